// Glob matching for repository paths: the pattern is compiled into tokens, then matched with a
// dynamic programme over (token, path position), so hostile patterns cannot cause exponential time.

#include "modelagent/glob_match.hpp"

#include <stdexcept>
#include <utility>

namespace modelagent {

namespace {

enum class TokenKind { Literal, AnyChar, Star, DoubleStar, DirPrefix, Class };

struct Token {
  explicit Token(TokenKind k, char lit = 0) : kind(k), literal(lit) {}
  TokenKind kind;
  char literal;
  bool negated = false;
  std::vector<std::pair<unsigned char, unsigned char>> ranges;  // Class only, inclusive
};

[[noreturn]] void malformed(std::string_view pattern, const std::string& why) {
  throw std::invalid_argument("invalid glob pattern '" + std::string(pattern) + "': " + why);
}

std::vector<Token> compile(std::string_view p) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < p.size()) {
    char c = p[i];
    if (c == '*') {
      size_t run = 0;
      while (i + run < p.size() && p[i + run] == '*') ++run;
      bool segment_start = i == 0 || p[i - 1] == '/';
      size_t after = i + run;
      if (run >= 2 && segment_start && after < p.size() && p[after] == '/') {
        tokens.emplace_back(TokenKind::DirPrefix);
        i = after + 1;
      } else {
        tokens.emplace_back(run >= 2 ? TokenKind::DoubleStar : TokenKind::Star);
        i = after;
      }
    } else if (c == '?') {
      tokens.emplace_back(TokenKind::AnyChar);
      ++i;
    } else if (c == '\\') {
      if (i + 1 >= p.size()) malformed(p, "trailing backslash");
      tokens.emplace_back(TokenKind::Literal, p[i + 1]);
      i += 2;
    } else if (c == '[') {
      Token t(TokenKind::Class);
      size_t j = i + 1;
      if (j < p.size() && (p[j] == '!' || p[j] == '^')) {
        t.negated = true;
        ++j;
      }
      bool first = true;
      bool closed = false;
      while (j < p.size()) {
        unsigned char lo = static_cast<unsigned char>(p[j]);
        if (lo == ']' && !first) {
          closed = true;
          ++j;
          break;
        }
        first = false;
        if (lo == '\\') {
          if (j + 1 >= p.size()) malformed(p, "trailing backslash in character class");
          lo = static_cast<unsigned char>(p[++j]);
        }
        ++j;
        unsigned char hi = lo;
        if (j + 1 < p.size() && p[j] == '-' && p[j + 1] != ']') {
          hi = static_cast<unsigned char>(p[j + 1]);
          if (hi == '\\') {
            if (j + 2 >= p.size()) malformed(p, "trailing backslash in character class");
            hi = static_cast<unsigned char>(p[j + 2]);
            ++j;
          }
          j += 2;
          if (hi < lo) malformed(p, "reversed range in character class");
        }
        t.ranges.emplace_back(lo, hi);
      }
      if (!closed) malformed(p, "unterminated character class '['");
      tokens.push_back(std::move(t));
      i = j;
    } else {
      tokens.emplace_back(TokenKind::Literal, c);
      ++i;
    }
  }
  return tokens;
}

bool class_matches(const Token& t, unsigned char c) {
  bool in = false;
  for (const auto& [lo, hi] : t.ranges) {
    if (c >= lo && c <= hi) {
      in = true;
      break;
    }
  }
  return in != t.negated;
}

}  // namespace

void validate_glob(std::string_view pattern) { (void)compile(pattern); }

bool glob_match(std::string_view pattern, std::string_view path) {
  const std::vector<Token> tokens = compile(pattern);
  const size_t n = path.size();
  // next[s]: tokens[t+1..] match path[s..]; cur[s]: tokens[t..] match path[s..].
  std::vector<char> next(n + 1, 0), cur(n + 1, 0);
  next[n] = 1;  // no tokens left: only the empty rest matches
  for (size_t t = tokens.size(); t-- > 0;) {
    const Token& tok = tokens[t];
    cur.assign(n + 1, 0);
    bool later_dir = false;  // DirPrefix: some '/' at k >= s with next[k + 1]
    for (size_t s = n + 1; s-- > 0;) {
      const bool has = s < n;
      const unsigned char c = has ? static_cast<unsigned char>(path[s]) : 0;
      switch (tok.kind) {
        case TokenKind::Literal:
          cur[s] = has && c == static_cast<unsigned char>(tok.literal) && next[s + 1];
          break;
        case TokenKind::AnyChar:
          cur[s] = has && c != '/' && next[s + 1];
          break;
        case TokenKind::Class:
          cur[s] = has && c != '/' && class_matches(tok, c) && next[s + 1];
          break;
        case TokenKind::Star:
          cur[s] = next[s] || (has && c != '/' && cur[s + 1]);
          break;
        case TokenKind::DoubleStar:
          cur[s] = next[s] || (has && cur[s + 1]);
          break;
        case TokenKind::DirPrefix:
          if (has && c == '/' && next[s + 1]) later_dir = true;
          cur[s] = next[s] || later_dir;
          break;
      }
    }
    std::swap(cur, next);
  }
  return next[0] != 0;
}

bool glob_match_any(const std::vector<std::string>& patterns, std::string_view path) {
  for (const auto& p : patterns) {
    if (glob_match(p, path)) return true;
  }
  return false;
}

}  // namespace modelagent
