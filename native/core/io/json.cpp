#include "json.h"

#include <cstdlib>
#include <cstring>
#include <deque>
#include <string_view>
#include <unordered_set>

#include "../error.h"

namespace wp::json {

const Value* Value::find(const std::string& key) const {
  for (const auto& m : members) if (m.first == key) return &m.second;
  return nullptr;
}

namespace {

class Parser {
 public:
  Parser(const char* p, size_t n, bool dup) : s_(p), n_(n), dup_(dup) {}

  Value parse_document() {
    Value v = parse_value(0);
    skip_ws();
    if (i_ != n_) fail("trailing characters after the JSON value");
    return v;
  }

  // The document must be an object: its members go to `member` one by one, in file order, and are not kept.
  void parse_members(const MemberFn& member) {
    skip_ws();
    if (i_ >= n_ || s_[i_] != '{') fail("expected '{'");
    ++i_;
    // Keys seen, as views: into the text itself for a key written without escapes (its decoded form is its raw
    // bytes: an escape always decodes to fewer bytes than it takes), else into a copy kept here.
    std::unordered_set<std::string_view> seen;
    std::deque<std::string> unescaped;
    seen.reserve(n_ / 128);
    if (!eat('}')) {
      do {
        skip_ws();
        if (i_ >= n_ || s_[i_] != '"') fail("expected a string key");
        const size_t raw = i_ + 1;
        std::string key = parse_string();
        if (dup_) {
          std::string_view kv(s_ + raw, key.size());
          if (i_ - raw - 1 != key.size()) kv = unescaped.emplace_back(key);
          if (!seen.insert(kv).second) duplicate(key, 0);
        }
        expect(':');
        Value v = parse_value(1);
        member(key, v);
      } while (eat(','));
      expect('}');
    }
    skip_ws();
    if (i_ != n_) fail("trailing characters after the JSON value");
  }

 private:
  const char* s_;
  size_t n_, i_ = 0;
  bool dup_;

  // At the top level of a safetensors header a key is a tensor name: report it as the tensor.
  [[noreturn]] void duplicate(const std::string& key, int depth) {
    throw Error(Code::Format, "invalid JSON header at byte " + std::to_string(i_) + ": duplicate key \"" + key + "\"",
                depth == 0 ? key : std::string());
  }
  [[noreturn]] void fail(const std::string& what) {
    throw Error(Code::Format, "invalid JSON header at byte " + std::to_string(i_) + ": " + what);
  }
  void skip_ws() {
    while (i_ < n_ && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < n_ && s_[i_] == c) { ++i_; return true; }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }

  Value parse_value(int depth) {
    if (depth > 64) fail("nesting too deep");
    skip_ws();
    if (i_ >= n_) fail("unexpected end");
    char c = s_[i_];
    Value v;
    if (c == '{') {
      ++i_;
      v.kind = Value::Kind::Object;
      // Duplicate keys: a linear scan while the object is small (a tensor entry has three members), a hash set of
      // the keys beyond that.
      constexpr size_t kScan = 16;
      std::unordered_set<std::string> seen;
      if (eat('}')) return v;
      do {
        skip_ws();
        if (i_ >= n_ || s_[i_] != '"') fail("expected a string key");
        std::string key = parse_string();
        if (dup_) {
          const size_t m = v.members.size();
          if (m == kScan) for (const auto& mb : v.members) seen.insert(mb.first);
          bool dup = false;
          if (m < kScan) {
            for (const auto& mb : v.members) if (mb.first == key) { dup = true; break; }
          } else {
            dup = !seen.insert(key).second;
          }
          if (dup) duplicate(key, depth);
        }
        expect(':');
        Value member = parse_value(depth + 1);
        v.members.emplace_back(std::move(key), std::move(member));
      } while (eat(','));
      expect('}');
    } else if (c == '[') {
      ++i_;
      v.kind = Value::Kind::Array;
      if (eat(']')) return v;
      do { v.items.push_back(parse_value(depth + 1)); } while (eat(','));
      expect(']');
    } else if (c == '"') {
      v.kind = Value::Kind::String;
      v.str = parse_string();
    } else if (c == 't' && n_ - i_ >= 4 && std::string(s_ + i_, 4) == "true") {
      i_ += 4; v.kind = Value::Kind::Bool; v.boolean = true;
    } else if (c == 'f' && n_ - i_ >= 5 && std::string(s_ + i_, 5) == "false") {
      i_ += 5; v.kind = Value::Kind::Bool;
    } else if (c == 'n' && n_ - i_ >= 4 && std::string(s_ + i_, 4) == "null") {
      i_ += 4;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      parse_number(v);
    } else {
      fail(std::string("unexpected character '") + c + "'");
    }
    return v;
  }

  void parse_number(Value& v) {
    size_t start = i_;
    v.kind = Value::Kind::Number;
    if (s_[i_] == '-') { v.negative = true; ++i_; }
    if (i_ >= n_ || s_[i_] < '0' || s_[i_] > '9') fail("bad number");
    bool integer = true;
    uint64_t u = 0;
    bool overflow = false;
    while (i_ < n_ && s_[i_] >= '0' && s_[i_] <= '9') {
      uint64_t d = (uint64_t)(s_[i_] - '0');
      if (u > (UINT64_MAX - d) / 10) overflow = true;
      u = u * 10 + d;
      ++i_;
    }
    if (i_ < n_ && s_[i_] == '.') {
      integer = false; ++i_;
      if (i_ >= n_ || s_[i_] < '0' || s_[i_] > '9') fail("bad number");
      while (i_ < n_ && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    }
    if (i_ < n_ && (s_[i_] == 'e' || s_[i_] == 'E')) {
      integer = false; ++i_;
      if (i_ < n_ && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (i_ >= n_ || s_[i_] < '0' || s_[i_] > '9') fail("bad number");
      while (i_ < n_ && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    }
    if (integer && !overflow) {
      // A uint64 converts to the nearest double, as strtod rounds the literal: the same value, without the copy.
      v.number = v.negative ? -(double)u : (double)u;
    } else {
      std::string lit(s_ + start, i_ - start);
      v.number = std::strtod(lit.c_str(), nullptr);
    }
    v.is_integer = integer && !overflow;
    v.uint = u;
  }

  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) out += (char)cp;
    else if (cp < 0x800) { out += (char)(0xc0 | (cp >> 6)); out += (char)(0x80 | (cp & 0x3f)); }
    else if (cp < 0x10000) {
      out += (char)(0xe0 | (cp >> 12)); out += (char)(0x80 | ((cp >> 6) & 0x3f)); out += (char)(0x80 | (cp & 0x3f));
    } else {
      out += (char)(0xf0 | (cp >> 18)); out += (char)(0x80 | ((cp >> 12) & 0x3f));
      out += (char)(0x80 | ((cp >> 6) & 0x3f)); out += (char)(0x80 | (cp & 0x3f));
    }
  }
  uint32_t hex4() {
    if (n_ - i_ < 4) fail("bad \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
      else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }
  std::string parse_string() {
    ++i_;  // opening quote
    std::string out;
    for (;;) {
      if (i_ >= n_) fail("unterminated string");
      // A run of plain characters in one append.
      size_t j = i_;
      while (j < n_ && s_[j] != '"' && s_[j] != '\\' && (unsigned char)s_[j] >= 0x20) ++j;
      if (j > i_) { out.append(s_ + i_, j - i_); i_ = j; continue; }
      char c = s_[i_++];
      if (c == '"') return out;
      if ((unsigned char)c < 0x20) fail("control character in string");
      if (c != '\\') { out += c; continue; }
      if (i_ >= n_) fail("unterminated string");
      char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xd800 && cp < 0xdc00) {
            if (n_ - i_ < 6 || s_[i_] != '\\' || s_[i_ + 1] != 'u') fail("unpaired surrogate");
            i_ += 2;
            uint32_t lo = hex4();
            if (lo < 0xdc00 || lo >= 0xe000) fail("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            fail("unpaired surrogate");
          }
          put_utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
  }
};

}  // namespace

Value parse(const char* text, size_t len, bool reject_duplicates) {
  return Parser(text, len, reject_duplicates).parse_document();
}

void parse_members(const char* text, size_t len, const MemberFn& member, bool reject_duplicates) {
  Parser(text, len, reject_duplicates).parse_members(member);
}

bool valid_utf8(const char* text, size_t len, size_t* bad_at) {
  const unsigned char* s = (const unsigned char*)text;
  size_t i = 0;
  while (i < len) {
    if (len - i >= 8) {  // eight ASCII bytes at a time
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if (!(w & 0x8080808080808080ull)) { i += 8; continue; }
    }
    unsigned c = s[i];
    if (c < 0x80) { ++i; continue; }
    size_t n;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; min = 0x10000; }
    else { *bad_at = i; return false; }
    if (len - i <= n) { *bad_at = i; return false; }
    for (size_t k = 1; k <= n; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) { *bad_at = i; return false; }
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) { *bad_at = i; return false; }
    i += n + 1;
  }
  return true;
}

void append_quoted(std::string& out, const std::string& s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) { out += "\\u00"; out += hex[c >> 4]; out += hex[c & 15]; }
        else out += (char)c;
    }
  }
  out += '"';
}

}  // namespace wp::json
