// A small strict XML reader for the documents S3 and STS answer with (no DTDs, attributes ignored).

#include <cctype>
#include <cstdint>
#include <string>

#include "modelagent/errors.hpp"
#include "modelagent/s3.hpp"

namespace modelagent::s3 {

namespace {

constexpr int kMaxDepth = 64;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool is_name_char(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return std::isalnum(u) || c == '_' || c == '-' || c == '.' || c == ':' || u >= 0x80;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  Parser(std::string_view text, const std::string& what) : s_(text), what_(what) {}

  XmlElement document() {
    skip_misc();
    if (pos_ >= s_.size() || s_[pos_] != '<') fail("expected the root element");
    XmlElement root = element(0);
    skip_misc();
    if (pos_ != s_.size()) fail("content after the root element");
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw DownloadError(what_ + ": malformed XML (" + why + ") at offset " + std::to_string(pos_));
  }

  bool starts(std::string_view token) const { return s_.substr(pos_, token.size()) == token; }

  void skip_spaces() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }

  void skip_until(std::string_view end, const char* what) {
    size_t e = s_.find(end, pos_);
    if (e == std::string_view::npos) fail(std::string("unterminated ") + what);
    pos_ = e + end.size();
  }

  // Whitespace, comments and processing instructions (incl. the declaration) outside the root.
  void skip_misc() {
    if (pos_ == 0 && starts("\xEF\xBB\xBF")) pos_ = 3;
    for (;;) {
      skip_spaces();
      if (starts("<?")) {
        skip_until("?>", "processing instruction");
      } else if (starts("<!--")) {
        skip_until("-->", "comment");
      } else if (starts("<!")) {
        fail("document type declarations are not accepted");
      } else {
        return;
      }
    }
  }

  std::string name() {
    size_t start = pos_;
    while (pos_ < s_.size() && is_name_char(s_[pos_])) ++pos_;
    if (pos_ == start) fail("expected a name");
    return std::string(s_.substr(start, pos_ - start));
  }

  static std::string local(const std::string& qname) {
    size_t colon = qname.rfind(':');
    return colon == std::string::npos ? qname : qname.substr(colon + 1);
  }

  void entity(std::string& out) {
    size_t semi = s_.find(';', pos_);
    if (semi == std::string_view::npos || semi - pos_ > 12) fail("unterminated entity reference");
    std::string_view ref = s_.substr(pos_ + 1, semi - pos_ - 1);
    if (ref == "lt") out += '<';
    else if (ref == "gt") out += '>';
    else if (ref == "amp") out += '&';
    else if (ref == "quot") out += '"';
    else if (ref == "apos") out += '\'';
    else if (ref.size() > 1 && ref[0] == '#') {
      bool hex = ref[1] == 'x';
      std::string_view digits = ref.substr(hex ? 2 : 1);
      if (digits.empty()) fail("empty character reference");
      uint32_t cp = 0;
      for (char c : digits) {
        int v = -1;
        if (c >= '0' && c <= '9') v = c - '0';
        else if (hex && c >= 'a' && c <= 'f') v = c - 'a' + 10;
        else if (hex && c >= 'A' && c <= 'F') v = c - 'A' + 10;
        if (v < 0) fail("bad character reference");
        cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
        if (cp > 0x10FFFF) fail("character reference out of range");
      }
      if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) fail("character reference to an invalid code point");
      append_utf8(out, cp);
    } else {
      fail("unknown entity '&" + std::string(ref) + ";'");
    }
    pos_ = semi + 1;
  }

  void attributes() {
    for (;;) {
      skip_spaces();
      if (pos_ >= s_.size()) fail("unterminated start tag");
      if (s_[pos_] == '>' || s_[pos_] == '/') return;
      name();
      skip_spaces();
      if (pos_ >= s_.size() || s_[pos_] != '=') fail("expected '=' after an attribute name");
      ++pos_;
      skip_spaces();
      if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\'')) fail("expected a quoted attribute value");
      char quote = s_[pos_++];
      size_t end = s_.find(quote, pos_);
      if (end == std::string_view::npos) fail("unterminated attribute value");
      if (s_.substr(pos_, end - pos_).find('<') != std::string_view::npos) fail("'<' in an attribute value");
      pos_ = end + 1;
    }
  }

  XmlElement element(int depth) {
    if (depth >= kMaxDepth) fail("elements nested too deeply");
    ++pos_;  // '<'
    std::string qname = name();
    XmlElement el;
    el.name = local(qname);
    attributes();
    if (s_[pos_] == '/') {
      ++pos_;
      if (pos_ >= s_.size() || s_[pos_] != '>') fail("expected '>' after '/'");
      ++pos_;
      return el;
    }
    ++pos_;  // '>'
    for (;;) {
      if (pos_ >= s_.size()) fail("element <" + qname + "> is not closed");
      char c = s_[pos_];
      if (c == '<') {
        if (starts("</")) {
          pos_ += 2;
          std::string closing = name();
          if (closing != qname) fail("</" + closing + "> closes <" + qname + ">");
          skip_spaces();
          if (pos_ >= s_.size() || s_[pos_] != '>') fail("expected '>' in the end tag");
          ++pos_;
          return el;
        }
        if (starts("<!--")) {
          skip_until("-->", "comment");
        } else if (starts("<![CDATA[")) {
          size_t start = pos_ + 9;
          size_t end = s_.find("]]>", start);
          if (end == std::string_view::npos) fail("unterminated CDATA section");
          el.text.append(s_.substr(start, end - start));
          pos_ = end + 3;
        } else if (starts("<?")) {
          skip_until("?>", "processing instruction");
        } else if (starts("<!")) {
          fail("declarations are not accepted inside elements");
        } else {
          el.children.push_back(element(depth + 1));
        }
      } else if (c == '&') {
        entity(el.text);
      } else if (c == '>' && pos_ >= 2 && s_.substr(pos_ - 2, 2) == "]]") {
        fail("']]>' in character data");
      } else {
        el.text += c;
        ++pos_;
      }
    }
  }

  std::string_view s_;
  const std::string& what_;
  size_t pos_ = 0;
};

}  // namespace

const XmlElement* XmlElement::child(std::string_view local_name) const {
  for (const auto& c : children) {
    if (c.name == local_name) return &c;
  }
  return nullptr;
}

std::vector<const XmlElement*> XmlElement::children_named(std::string_view local_name) const {
  std::vector<const XmlElement*> out;
  for (const auto& c : children) {
    if (c.name == local_name) out.push_back(&c);
  }
  return out;
}

XmlElement parse_xml(std::string_view text, const std::string& what) { return Parser(text, what).document(); }

}  // namespace modelagent::s3
