#pragma once
// Path glob patterns for include/exclude filters of repository files.
//
// Syntax (matched against the whole '/'-separated relative path):
//   *       any run of characters except '/'
//   ?       one character except '/'
//   **      any run of characters including '/'; as a whole segment "**/" also matches zero directories,
//           so "**/*.bin" matches "x.bin" and "a/b/x.bin", and "a/**" matches everything under "a/"
//   [abc] [a-z] [!a-z] [^a-z]   one character (not '/') in / not in the class
//   \c      the character c literally
// A malformed pattern (unterminated class, trailing backslash) is an error, never a silent mismatch.

#include <string>
#include <string_view>
#include <vector>

namespace modelagent {

// Throws std::invalid_argument naming the pattern when it is malformed.
void validate_glob(std::string_view pattern);

// True when the whole path matches the pattern. Throws std::invalid_argument for a malformed pattern.
bool glob_match(std::string_view pattern, std::string_view path);

// True when any pattern matches.
bool glob_match_any(const std::vector<std::string>& patterns, std::string_view path);

}  // namespace modelagent
