// info.h: a small record a kernel returns (gemm_info, device_info, memory_stats): ordered keys with
// a string, number or boolean each. Napi-free; common/op.cc turns it into a JS object.
#pragma once
#include <string>
#include <vector>

namespace pstal {

struct Info {
  enum Kind { STR, NUM, BOOL };
  struct Field {
    std::string key;
    Kind kind;
    std::string str;
    double num;
  };
  std::vector<Field> fields;
  Info& str(const std::string& k, const std::string& v) { return add({k, STR, v, 0}); }
  Info& num(const std::string& k, double v) { return add({k, NUM, "", v}); }
  Info& flag(const std::string& k, bool v) { return add({k, BOOL, "", v ? 1.0 : 0.0}); }

 private:
  Info& add(Field f) {
    fields.push_back(std::move(f));
    return *this;
  }
};

}  // namespace pstal
