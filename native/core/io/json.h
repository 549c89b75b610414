// A small, strict JSON reader and writer helpers, enough for safetensors headers. It keeps object members
// in file order and reports duplicate keys, which the reference reader rejects.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wp::json {

struct Value {
  enum class Kind { Null, Bool, Number, String, Array, Object } kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  bool is_integer = false;     // the literal had no fraction or exponent
  uint64_t uint = 0;           // exact value when is_integer and non-negative
  bool negative = false;
  std::string str;
  std::vector<Value> items;                          // Array
  std::vector<std::pair<std::string, Value>> members;  // Object, in file order

  const Value* find(const std::string& key) const;
};

// Parses text; throws wp::Error(Format) with the byte offset of the problem. Duplicate object keys are
// an error when reject_duplicates is set.
Value parse(const char* text, size_t len, bool reject_duplicates = true);

// Parses text, which must be one JSON object, member by member: member(key, value) is called for each member in
// file order, and neither is kept afterwards (the caller may move from them), so a large object (a safetensors
// header of 10^5 tensor entries) is never held as a tree. Syntax errors and duplicate keys throw as parse() does,
// at the point where they are read: members before them have already been passed on.
using MemberFn = std::function<void(std::string& key, Value& value)>;
void parse_members(const char* text, size_t len, const MemberFn& member, bool reject_duplicates = true);

// True when text is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF); else false
// with the offset of the first bad byte in *bad_at.
bool valid_utf8(const char* text, size_t len, size_t* bad_at);

// Appends s as a JSON string literal (quotes and escapes) to out.
void append_quoted(std::string& out, const std::string& s);

}  // namespace wp::json
