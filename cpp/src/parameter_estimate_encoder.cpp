// Encoder-only models in the BERT layout (bert, roberta, xlm-roberta, camembert, ernie, electra) and
// distilbert: word + position + token-type embeddings, post-norm layers with biases everywhere, and the
// head the architecture name implies (pooler for bare models, MLM transform, classifier).

#include "parameter_estimate_detail.hpp"

namespace modelagent::param_estimate {

namespace {

std::optional<Count> estimate_distilbert(const Fields& f, std::string_view arch) {
  const auto dim = f.num({"dim", "hidden_size"});
  const auto layers = f.num({"n_layers", "num_hidden_layers"});
  const auto hidden = f.num({"hidden_dim", "intermediate_size"});
  const auto vocab = f.num("vocab_size");
  if (!dim || !layers || !hidden || !vocab || *dim == 0 || *layers == 0 || *vocab == 0) return std::nullopt;
  const uint64_t d = *dim;
  const uint64_t positions = f.num("max_position_embeddings").value_or(512);
  Count total = Count(*vocab) * d + Count(positions) * d + layer_norm(d, true);
  const Count layer = linear(d, d, true) * 4 + mlp(d, *hidden, false, true) + layer_norm(d, true) * 2;
  total = total + Count(*layers) * layer;
  if (contains(arch, "ForMaskedLM")) {
    total = total + linear(d, d, true) + layer_norm(d, true) + *vocab;
  } else if (contains(arch, "ForSequenceClassification")) {
    total = total + linear(d, d, true) + linear(d, label_count(f).value_or(2), true);
  }
  return total;
}

}  // namespace

bool is_encoder_type(std::string_view mt) {
  return one_of(mt, {"bert", "roberta", "xlm-roberta", "camembert", "ernie", "electra", "distilbert"});
}

std::optional<Count> estimate_encoder(const Fields& f) {
  const std::string mt = family_of(f);
  const std::string arch = f.first_architecture();
  if (mt == "distilbert") return estimate_distilbert(f, arch);

  const auto hidden = f.num("hidden_size");
  const auto layers = f.num("num_hidden_layers");
  const auto inter = f.num("intermediate_size");
  const auto vocab = f.num("vocab_size");
  if (!hidden || !layers || !inter || !vocab || *hidden == 0 || *layers == 0 || *vocab == 0) return std::nullopt;
  const uint64_t h = *hidden;
  const uint64_t emb = f.num("embedding_size").value_or(h);  // electra factorizes its embeddings
  const std::string position_type = f.text("position_embedding_type");
  const uint64_t positions =
      (position_type.empty() || position_type == "absolute") ? f.num("max_position_embeddings").value_or(512) : 0;
  const uint64_t token_types = f.num("type_vocab_size").value_or(2);

  Count total = (Count(*vocab) + positions + token_types) * emb + layer_norm(emb, true);
  if (emb != h) total = total + linear(emb, h, true);
  const Count layer = linear(h, h, true) * 4 + mlp(h, *inter, false, true) + layer_norm(h, true) * 2;
  total = total + Count(*layers) * layer;

  const bool roberta_like = one_of(mt, {"roberta", "xlm-roberta", "camembert"});
  const Count pooler = linear(h, h, true);
  if (contains(arch, "ForMaskedLM")) {
    total = total + linear(h, emb, true) + layer_norm(emb, true) + *vocab;  // decoder weight tied, bias not
  } else if (contains(arch, "ForSequenceClassification")) {
    const uint64_t labels = label_count(f).value_or(2);
    total = total + (roberta_like ? linear(h, h, true) : pooler) + linear(h, labels, true);
  } else if (contains(arch, "ForTokenClassification")) {
    total = total + linear(h, label_count(f).value_or(2), true);
  } else if (mt != "electra") {
    total = total + pooler;  // BertModel & co. build a pooler by default
  }
  return total;
}

}  // namespace modelagent::param_estimate
