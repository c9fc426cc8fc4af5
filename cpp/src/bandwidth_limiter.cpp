// Token-bucket bandwidth cap for the download engine.

#include "modelagent/bandwidth_limiter.hpp"

#include <algorithm>

namespace modelagent {

BandwidthLimiter::BandwidthLimiter(uint64_t bytes_per_second, double burst_seconds)
    : rate_(static_cast<double>(bytes_per_second)),
      capacity_(std::max(1.0, static_cast<double>(bytes_per_second) * burst_seconds)),
      tokens_(0) {}

void BandwidthLimiter::refill(double now) {
  if (last_ < 0) last_ = now;
  if (now > last_) {
    tokens_ = std::min(capacity_, tokens_ + (now - last_) * rate_);
    last_ = now;
  }
}

void BandwidthLimiter::consume(uint64_t bytes, double now) {
  if (!enabled()) return;
  refill(now);
  tokens_ -= static_cast<double>(bytes);
}

double BandwidthLimiter::wait_seconds(double now) {
  if (!enabled()) return 0;
  refill(now);
  return tokens_ >= 0 ? 0 : -tokens_ / rate_;
}

}  // namespace modelagent
