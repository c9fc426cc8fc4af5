// The parameter-size string (8.03B, 46.7B, 151.5K), computed in integers so no float noise appears.

#include <string>

#include "modelagent/model_metadata.hpp"

namespace modelagent {

std::string format_parameter_size(uint64_t count) {
  struct Unit {
    uint64_t size;
    char suffix;
  };
  static constexpr Unit kUnits[] = {{1'000'000'000'000ull, 'T'}, {1'000'000'000ull, 'B'}, {1'000'000ull, 'M'}, {1'000ull, 'K'}};
  if (count < 1000) return std::to_string(count);

  int u = 0;
  while (count < kUnits[u].size) ++u;
  // Hundredths of the unit, rounded half up: q*100 + round(r*100/size). r*100 < 1e14, no overflow.
  auto hundredths = [&](const Unit& unit) {
    uint64_t q = count / unit.size, r = count % unit.size;
    return q * 100 + (r * 100 + unit.size / 2) / unit.size;
  };
  uint64_t h = hundredths(kUnits[u]);
  if (h >= 100'000 && u > 0) {  // 999.995M rounds to 1000M: say 1B instead
    --u;
    h = hundredths(kUnits[u]);
  }
  uint64_t whole = h / 100, frac = h % 100;
  std::string out = std::to_string(whole);
  if (frac != 0) {
    out += '.';
    out += static_cast<char>('0' + frac / 10);
    if (frac % 10 != 0) out += static_cast<char>('0' + frac % 10);
  }
  out += kUnits[u].suffix;
  return out;
}

}  // namespace modelagent
