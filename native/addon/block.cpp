// N-API face of the block-scaled formats. To be written.
#include "common.h"

namespace wpa {

void init_block(Napi::Env env, Napi::Object exports) {}

}  // namespace wpa
