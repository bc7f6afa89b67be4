// Module registration for snp_guest.node. The exports are deliberately few: the TypeScript
// layer (src/snp/ioctl.ts) owns validation of the response, retries and error mapping.
#include <napi.h>

namespace skr {
// getReport(reportData: Buffer(64), vmpl: 0..3, device: string, legacy: boolean): Promise<Buffer>
Napi::Value GetReport(const Napi::CallbackInfo& info);
}  // namespace skr

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("getReport", Napi::Function::New(env, skr::GetReport, "getReport"));
  return exports;
}

}  // namespace

NODE_API_MODULE(snp_guest, Init)
