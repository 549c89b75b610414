// N-API face of entropy coding. To be written.
#include "common.h"

namespace wpa {

void init_entropy(Napi::Env env, Napi::Object exports) {}

}  // namespace wpa
