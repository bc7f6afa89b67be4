// getReport: one SNP_GET_REPORT (or legacy 5.15 SEV_SNP_GUEST_MSG_REPORT) ioctl on a worker
// thread. The call can block for ~60 s inside the kernel (host throttling), so it never runs on
// the event loop. The C++ stays thin: it returns the whole response buffer and the raw errno /
// exitinfo2, and src/snp/ioctl.ts checks MSG_REPORT_RSP and maps errors.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <napi.h>

#include <array>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "sev_guest_abi.h"

namespace skr {
namespace {

// One guest request in flight per process: the kernel serialises on snp_cmd_mutex anyway, but
// a queue of blocked worker threads would starve the libuv pool, and kernels before the
// throttling series turn a host BUSY into a VMPCK wipe, so we never pile requests up.
std::mutex g_device_mutex;

// Node has no N-API for errno names; this covers every errno the driver or open(2) returns.
const char* ErrnoName(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOTTY: return "ENOTTY";
    case EROFS: return "EROFS";
    case ENOSYS: return "ENOSYS";
    case ENOSR: return "ENOSR";
    case EBADMSG: return "EBADMSG";
    case EOVERFLOW: return "EOVERFLOW";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENOKEY: return "ENOKEY";
    default: return "EUNKNOWN";
  }
}

std::string Hex64(uint64_t value) {
  char buf[19];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, value);
  return std::string(buf);
}

class GetReportWorker final : public Napi::AsyncWorker {
 public:
  GetReportWorker(Napi::Env env, const uint8_t* report_data, uint32_t vmpl, std::string device, bool legacy)
      : Napi::AsyncWorker(env, "skr:snp_get_report"),
        deferred_(Napi::Promise::Deferred::New(env)),
        vmpl_(vmpl),
        device_(std::move(device)),
        legacy_(legacy),
        response_(legacy ? SEV_SNP_REPORT_RSP_BUF_SZ : SNP_REPORT_RESP_SIZE, 0) {
    std::memcpy(report_data_.data(), report_data, report_data_.size());
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    std::lock_guard<std::mutex> lock(g_device_mutex);
    int fd;
    do {
      fd = open(device_.c_str(), O_RDWR | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      errno_ = errno;
      syscall_ = "open";
      return;
    }
    // Never retried here: a failed guest request may have consumed a sequence number, and
    // whether it is safe to try again is the TypeScript layer's decision.
    const int rc = legacy_ ? LegacyIoctl(fd) : Ioctl(fd);
    const int saved = rc < 0 ? errno : 0;
    close(fd);
    if (rc < 0) {
      errno_ = saved;
      syscall_ = "ioctl";
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (errno_ == 0) {
      deferred_.Resolve(Napi::Buffer<uint8_t>::Copy(env, response_.data(), response_.size()));
      return;
    }
    Napi::Error error = Napi::Error::New(env, std::string("SNP_GET_REPORT: ") + std::strerror(errno_));
    Napi::Object obj = error.Value();
    obj.Set("errno", Napi::Number::New(env, errno_));
    obj.Set("code", Napi::String::New(env, ErrnoName(errno_)));
    obj.Set("syscall", Napi::String::New(env, syscall_));
    obj.Set("fwError", Napi::Number::New(env, static_cast<double>(exitinfo2_ & SNP_GUEST_FW_ERR_MASK)));
    obj.Set("vmmError", Napi::Number::New(env, static_cast<double>(exitinfo2_ >> SNP_GUEST_VMM_ERR_SHIFT)));
    obj.Set("exitinfo2", Napi::String::New(env, Hex64(exitinfo2_)));
    deferred_.Reject(obj);
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  int Ioctl(int fd) {
    struct snp_report_req req;
    std::memset(&req, 0, sizeof(req));
    std::memcpy(req.user_data, report_data_.data(), SNP_REPORT_USER_DATA_SIZE);
    req.vmpl = vmpl_;
    struct snp_guest_request_ioctl io;
    std::memset(&io, 0, sizeof(io));
    io.msg_version = SNP_MSG_VERSION;
    io.req_data = reinterpret_cast<uintptr_t>(&req);
    io.resp_data = reinterpret_cast<uintptr_t>(response_.data());
    // The kernel copies the struct back only when exitinfo2 != 0, so a stale value would
    // otherwise survive a success.
    io.exitinfo2 = 0;
    const int rc = ioctl(fd, SNP_GET_REPORT, &io);
    exitinfo2_ = io.exitinfo2;
    return rc;
  }

  int LegacyIoctl(int fd) {
    struct snp_report_req req;
    std::memset(&req, 0, sizeof(req));
    std::memcpy(req.user_data, report_data_.data(), SNP_REPORT_USER_DATA_SIZE);
    req.vmpl = vmpl_;
    struct sev_snp_guest_request io;
    std::memset(&io, 0, sizeof(io));
    io.req_msg_type = SNP_MSG_REPORT_REQ;
    io.rsp_msg_type = SNP_MSG_REPORT_RSP;
    io.msg_version = SNP_MSG_VERSION;
    io.request_len = SEV_SNP_REPORT_REQ_BUF_SZ;
    io.request_uaddr = reinterpret_cast<uintptr_t>(&req);
    io.response_len = SEV_SNP_REPORT_RSP_BUF_SZ;
    io.response_uaddr = reinterpret_cast<uintptr_t>(response_.data());
    io.error = 0;
    const int rc = ioctl(fd, SEV_SNP_GUEST_MSG_REPORT, &io);
    exitinfo2_ = io.error;
    return rc;
  }

  Napi::Promise::Deferred deferred_;
  std::array<uint8_t, SNP_REPORT_USER_DATA_SIZE> report_data_{};
  uint32_t vmpl_;
  std::string device_;
  bool legacy_;
  std::vector<uint8_t> response_;
  int errno_ = 0;
  const char* syscall_ = "";
  uint64_t exitinfo2_ = 0;
};

Napi::Value Throw(Napi::Error error) {
  error.ThrowAsJavaScriptException();
  return error.Env().Undefined();
}

}  // namespace

// Arguments are re-checked here although the TypeScript layer validates them first: this is
// the last line before raw pointers reach the kernel.
Napi::Value GetReport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) {
    return Throw(Napi::TypeError::New(env, "getReport expects (reportData, vmpl, device, legacy)"));
  }
  // A Uint8Array (Buffer is one): napi_is_buffer's answer for plain Uint8Arrays varies by Node version.
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return Throw(Napi::TypeError::New(env, "reportData must be a Buffer or Uint8Array"));
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  if (data.ElementLength() != SNP_REPORT_USER_DATA_SIZE) {
    return Throw(Napi::TypeError::New(
        env, "reportData is " + std::to_string(data.ElementLength()) + " bytes, want exactly 64"));
  }
  if (!info[1].IsNumber()) {
    return Throw(Napi::TypeError::New(env, "vmpl must be a number"));
  }
  const double vmpl = info[1].As<Napi::Number>().DoubleValue();
  if (!(vmpl >= 0 && vmpl <= 3) || std::floor(vmpl) != vmpl) {
    return Throw(Napi::RangeError::New(env, "vmpl must be an integer from 0 to 3"));
  }
  if (!info[2].IsString()) {
    return Throw(Napi::TypeError::New(env, "device must be a string"));
  }
  std::string device = info[2].As<Napi::String>().Utf8Value();
  if (device.empty() || device.find('\0') != std::string::npos) {
    return Throw(Napi::TypeError::New(env, "device must be a non-empty path without NUL bytes"));
  }
  if (!info[3].IsBoolean()) {
    return Throw(Napi::TypeError::New(env, "legacy must be a boolean"));
  }
  const bool legacy = info[3].As<Napi::Boolean>().Value();
  auto* worker = new GetReportWorker(env, data.Data(), static_cast<uint32_t>(vmpl), std::move(device), legacy);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace skr
