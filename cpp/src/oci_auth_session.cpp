// Session-token principals: sign with an ephemeral key and "ST$<token>", renew the token before expiry;
// plus the JWT claim helpers they use.

#include <nlohmann/json.hpp>

#include "modelagent/errors.hpp"
#include "modelagent/oci_auth.hpp"

namespace modelagent::oci {
namespace {

std::optional<nlohmann::json> jwt_payload(const std::string& token) {
  auto first = token.find('.');
  if (first == std::string::npos) return std::nullopt;
  auto second = token.find('.', first + 1);
  if (second == std::string::npos) return std::nullopt;
  try {
    auto payload = nlohmann::json::parse(base64_decode(token.substr(first + 1, second - first - 1)));
    if (!payload.is_object()) return std::nullopt;
    return payload;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

std::optional<int64_t> jwt_expiry(const std::string& token) {
  auto payload = jwt_payload(token);
  if (!payload || !payload->contains("exp") || !(*payload)["exp"].is_number()) return std::nullopt;
  return (*payload)["exp"].get<int64_t>();
}

std::string jwt_claim(const std::string& token, const std::string& claim) {
  auto payload = jwt_payload(token);
  if (!payload || !payload->contains(claim) || !(*payload)[claim].is_string()) return "";
  return (*payload)[claim].get<std::string>();
}

std::shared_ptr<const SessionTokenPrincipal::Session> SessionTokenPrincipal::new_session() const {
  Session session = fetch_session();
  if (!session.expires) {
    if (auto exp = jwt_expiry(session.token)) {
      session.expires = std::chrono::system_clock::time_point(std::chrono::seconds(*exp));
    }
  }
  return std::make_shared<const Session>(std::move(session));
}

std::string SessionTokenPrincipal::start() {
  std::lock_guard<std::mutex> fetch(fetch_mutex_);
  auto fresh = new_session();
  std::lock_guard<std::mutex> state(state_mutex_);
  session_ = fresh;
  return fresh->token;
}

std::shared_ptr<const SessionTokenPrincipal::Session> SessionTokenPrincipal::valid_session() const {
  const auto now = std::chrono::system_clock::now();
  auto fresh_enough = [&](const std::shared_ptr<const Session>& s) {
    return s && (!s->expires || *s->expires - now > kTokenRefreshMargin);
  };
  auto still_valid = [&](const std::shared_ptr<const Session>& s) {
    return s && (!s->expires || *s->expires - now > kTokenMinimumValidity);
  };
  std::shared_ptr<const Session> current;
  {
    std::lock_guard<std::mutex> state(state_mutex_);
    current = session_;
  }
  if (fresh_enough(current)) return current;

  std::unique_lock<std::mutex> fetch(fetch_mutex_, std::defer_lock);
  if (still_valid(current)) {
    // Renewal is due but the token still works: one thread renews, the others keep signing with it.
    if (!fetch.try_lock()) return current;
  } else {
    fetch.lock();
  }
  {
    std::lock_guard<std::mutex> state(state_mutex_);
    if (fresh_enough(session_)) return session_;  // renewed while this thread waited
    current = session_;
  }
  try {
    auto fresh = new_session();
    std::lock_guard<std::mutex> state(state_mutex_);
    session_ = fresh;
    return fresh;
  } catch (const CredentialsError&) {
    // A failed early renewal is retried by the next signature; only a token about to expire is fatal.
    if (still_valid(current)) return current;
    throw;
  }
}

void SessionTokenPrincipal::refresh() {
  std::lock_guard<std::mutex> fetch(fetch_mutex_);
  auto fresh = new_session();
  std::lock_guard<std::mutex> state(state_mutex_);
  session_ = std::move(fresh);
}

bool SessionTokenPrincipal::renew_after_rejection(const HeaderList& rejected) const {
  std::string authorization = authorization_of(rejected);
  std::lock_guard<std::mutex> fetch(fetch_mutex_);
  {
    std::lock_guard<std::mutex> state(state_mutex_);
    bool signed_with_current = session_ && authorization.find("keyId=\"ST$" + session_->token + "\"") != std::string::npos;
    if (session_ && !authorization.empty() && !signed_with_current) return true;  // renewed since
  }
  auto fresh = new_session();
  std::lock_guard<std::mutex> state(state_mutex_);
  session_ = std::move(fresh);
  return true;
}

std::string SessionTokenPrincipal::current_token() const { return valid_session()->token; }

void SessionTokenPrincipal::sign(const std::string& method, const std::string& url, const std::string& body,
                                 HeaderList& headers) const {
  auto session = valid_session();
  sign_request(method, url, body, headers, "ST$" + session->token, session->key);
}

}  // namespace modelagent::oci
