#pragma once
// Token bucket shared by all transfers of one run: bytes are charged as they arrive and the scheduler
// pauses receiving while the bucket is in debt. Time is passed in, so the arithmetic is testable.

#include <cstdint>

namespace modelagent {

class BandwidthLimiter {
 public:
  // bytes_per_second == 0 disables limiting. burst_seconds bounds how much unused allowance is saved.
  explicit BandwidthLimiter(uint64_t bytes_per_second, double burst_seconds = 0.25);

  bool enabled() const { return rate_ > 0; }
  // Charges received bytes at time `now` (seconds on a monotonic clock).
  void consume(uint64_t bytes, double now);
  // Seconds to wait from `now` until the bucket is out of debt; 0 when receiving may continue.
  double wait_seconds(double now);

 private:
  void refill(double now);
  double rate_;
  double capacity_;
  double tokens_;
  double last_ = -1;
};

}  // namespace modelagent
