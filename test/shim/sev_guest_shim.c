/*
 * LD_PRELOAD stand-in for the Linux SEV-SNP guest driver, so the native addon can be tested
 * on machines without SEV-SNP hardware. It intercepts open/openat/ioctl/close for
 * "/dev/sev-guest" and "/dev/sev", hands back a real fd on /dev/null, answers access/faccessat
 * for them as for present devices (skr's backend selection checks first), and emulates the driver's
 * observable behaviour (drivers/virt/coco/sev-guest/sev-guest.c, snp_guest_ioctl/get_report):
 *   - copy in the 32-byte snp_guest_request_ioctl, set exitinfo2 = 0xff, msg_version 0 -> EINVAL;
 *   - VMPCK wiped -> ENOTTY; unknown ioctl -> ENOTTY; NULL req/resp -> EINVAL;
 *   - all 4000 response bytes are copied out; firmware status is NOT checked by the kernel;
 *   - the struct is copied back to the caller only when exitinfo2 != 0.
 * Legacy /dev/sev (5.15 out-of-tree driver) follows the same rules with the 40-byte
 * sev_snp_guest_request, a 1280-byte response and the firmware error at offset 32.
 *
 * Environment:
 *   SKR_SHIM_MODE            ok | eio | eagain:N | bad-status | bad-size | eacces   (default ok)
 *   SKR_SHIM_VCEK_KEY        PEM file of the EC P-384 key that signs reports (unsigned if unset)
 *   SKR_SHIM_REPORT_VERSION  2 or 3 (default 3)
 *   SKR_SHIM_COUNT_FILE      where to write {"calls":N,"maxConcurrent":M} after each ioctl
 *
 * Build: cc -shared -fPIC -O1 -Wall -Wextra -Werror -o shim.so sev_guest_shim.c -ldl -lcrypto
 */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* The driver's own header when present (an independent check of native/sev_guest_abi.h). */
#if defined(__has_include) && __has_include(<linux/sev-guest.h>)
#include <linux/sev-guest.h>
#ifndef SNP_GUEST_VMM_ERR_SHIFT
#define exitinfo2 fw_err /* headers before the throttling series: same u64, older name */
#endif
#else
#include "../../native/sev_guest_abi.h"
#endif

/* The 5.15 struct was never upstream: transcribed from csc tools/get-snp-report/snp-ioctl5.h. */
struct shim_legacy_request {
  uint8_t req_msg_type;
  uint8_t rsp_msg_type;
  uint8_t msg_version;
  uint16_t request_len;
  uint64_t request_uaddr;
  uint16_t response_len;
  uint64_t response_uaddr;
  uint32_t error;
};
_Static_assert(sizeof(struct shim_legacy_request) == 40, "legacy request is 40 bytes");
_Static_assert(sizeof(struct snp_guest_request_ioctl) == 32, "snp_guest_request_ioctl is 32 bytes");
_Static_assert(sizeof(struct snp_report_req) == 96, "snp_report_req is 96 bytes");

#define SHIM_GET_REPORT 0xC0205300UL
#define SHIM_LEGACY_REPORT 0xC0285301UL
#define SHIM_RESP_SIZE 4000
#define SHIM_LEGACY_RESP_SIZE 1280
#define SHIM_REPORT_SIZE 0x4A0
#define SHIM_FW_INVALID_PARAM 0x16
#define SHIM_VMM_BUSY 2ULL

enum { KIND_NONE = 0, KIND_GUEST = 1, KIND_LEGACY = 2 };
enum { MODE_OK, MODE_EIO, MODE_EAGAIN, MODE_BAD_STATUS, MODE_BAD_SIZE, MODE_EACCES };

#define MAX_FDS 4096
static _Atomic unsigned char fd_kind[MAX_FDS];

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_access)(const char *, int);
static int (*real_faccessat)(int, const char *, int, int);

static int mode = MODE_OK;
static int eagain_left;
static int report_version = 3;
static const char *count_file;
static const char *key_file;

/* Device state, guarded like the driver's snp_cmd_mutex. */
static pthread_mutex_t cmd_mutex = PTHREAD_MUTEX_INITIALIZER;
static int vmpck_wiped;
static atomic_int in_flight;
static atomic_int max_in_flight;
static atomic_int calls;
static pthread_mutex_t count_mutex = PTHREAD_MUTEX_INITIALIZER;

static void resolve(void) {
  if (real_open) return;
  real_openat = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
  real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
  real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
  real_access = (int (*)(const char *, int))dlsym(RTLD_NEXT, "access");
  real_faccessat = (int (*)(int, const char *, int, int))dlsym(RTLD_NEXT, "faccessat");
  real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
}

__attribute__((constructor)) static void shim_init(void) {
  resolve();
  const char *m = getenv("SKR_SHIM_MODE");
  if (m == NULL || strcmp(m, "ok") == 0) mode = MODE_OK;
  else if (strcmp(m, "eio") == 0) mode = MODE_EIO;
  else if (strncmp(m, "eagain:", 7) == 0) { mode = MODE_EAGAIN; eagain_left = atoi(m + 7); }
  else if (strcmp(m, "bad-status") == 0) mode = MODE_BAD_STATUS;
  else if (strcmp(m, "bad-size") == 0) mode = MODE_BAD_SIZE;
  else if (strcmp(m, "eacces") == 0) mode = MODE_EACCES;
  else { fprintf(stderr, "sev_guest_shim: unknown SKR_SHIM_MODE '%s'\n", m); abort(); }
  const char *v = getenv("SKR_SHIM_REPORT_VERSION");
  if (v != NULL) report_version = atoi(v);
  count_file = getenv("SKR_SHIM_COUNT_FILE");
  key_file = getenv("SKR_SHIM_VCEK_KEY");
}

static int device_kind(const char *path) {
  if (path == NULL) return KIND_NONE;
  if (strcmp(path, "/dev/sev-guest") == 0) return KIND_GUEST;
  if (strcmp(path, "/dev/sev") == 0) return KIND_LEGACY;
  return KIND_NONE;
}

static int fake_open(int kind, int flags) {
  if (mode == MODE_EACCES) { errno = EACCES; return -1; }
  int fd = real_open("/dev/null", O_RDWR | (flags & O_CLOEXEC));
  if (fd < 0) return fd;
  if (fd >= MAX_FDS) { real_close(fd); errno = EMFILE; return -1; }
  atomic_store(&fd_kind[fd], (unsigned char)kind);
  return fd;
}

static mode_t mode_arg(int flags, va_list ap) {
  return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

static int do_open(const char *path, int flags, mode_t m) {
  resolve();
  int kind = device_kind(path);
  return kind ? fake_open(kind, flags) : real_open(path, flags, m);
}

static int do_openat(int dirfd, const char *path, int flags, mode_t m) {
  resolve();
  int kind = device_kind(path);
  return kind ? fake_open(kind, flags) : real_openat(dirfd, path, flags, m);
}

int open(const char *path, int flags, ...) {
  va_list ap; va_start(ap, flags); mode_t m = mode_arg(flags, ap); va_end(ap);
  return do_open(path, flags, m);
}
int open64(const char *path, int flags, ...) {
  va_list ap; va_start(ap, flags); mode_t m = mode_arg(flags, ap); va_end(ap);
  return do_open(path, flags, m);
}
int openat(int dirfd, const char *path, int flags, ...) {
  va_list ap; va_start(ap, flags); mode_t m = mode_arg(flags, ap); va_end(ap);
  return do_openat(dirfd, path, flags, m);
}
int openat64(int dirfd, const char *path, int flags, ...) {
  va_list ap; va_start(ap, flags); mode_t m = mode_arg(flags, ap); va_end(ap);
  return do_openat(dirfd, path, flags, m);
}
/* What _FORTIFY_SOURCE callers reach when the flags are not a compile-time constant. */
int __open_2(const char *path, int flags) { return do_open(path, flags, 0); }
int __open64_2(const char *path, int flags) { return do_open(path, flags, 0); }
int __openat_2(int dirfd, const char *path, int flags) { return do_openat(dirfd, path, flags, 0); }
int __openat64_2(int dirfd, const char *path, int flags) { return do_openat(dirfd, path, flags, 0); }

int access(const char *path, int amode) {
  resolve();
  return device_kind(path) ? 0 : real_access(path, amode);
}
int faccessat(int dirfd, const char *path, int amode, int flags) {
  resolve();
  return device_kind(path) ? 0 : real_faccessat(dirfd, path, amode, flags);
}

int close(int fd) {
  resolve();
  if (fd >= 0 && fd < MAX_FDS) atomic_store(&fd_kind[fd], (unsigned char)KIND_NONE);
  return real_close(fd);
}

/* ---- the emulated firmware --------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static EVP_PKEY *signing_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void load_key(void) {
  if (key_file == NULL) return;
  FILE *f = fopen(key_file, "rb");
  if (f == NULL) { fprintf(stderr, "sev_guest_shim: cannot read SKR_SHIM_VCEK_KEY\n"); abort(); }
  char pem[8192];
  size_t n = fread(pem, 1, sizeof(pem), f);
  fclose(f);
  BIO *bio = BIO_new_mem_buf(pem, (int)n);
  signing_key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  if (signing_key == NULL) { fprintf(stderr, "sev_guest_shim: SKR_SHIM_VCEK_KEY is not a PEM private key\n"); abort(); }
}

/* ECDSA P-384/SHA-384 over bytes 0..0x29F; R and S little-endian in 72-byte fields (SNP ABI). */
static void sign_report(uint8_t *report) {
  pthread_once(&key_once, load_key);
  if (signing_key == NULL) return;
  unsigned char der[160];
  size_t der_len = sizeof(der);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx != NULL &&
           EVP_DigestSignInit(ctx, NULL, EVP_sha384(), NULL, signing_key) == 1 &&
           EVP_DigestSign(ctx, der, &der_len, report, 0x2A0) == 1;
  EVP_MD_CTX_free(ctx);
  const unsigned char *p = der;
  ECDSA_SIG *sig = ok ? d2i_ECDSA_SIG(NULL, &p, (long)der_len) : NULL;
  if (sig == NULL) { fprintf(stderr, "sev_guest_shim: signing failed\n"); abort(); }
  const BIGNUM *r = NULL, *s = NULL;
  ECDSA_SIG_get0(sig, &r, &s);
  BN_bn2lebinpad(r, report + 0x2A0, 72);
  BN_bn2lebinpad(s, report + 0x2E8, 72);
  ECDSA_SIG_free(sig);
}

static void build_report(uint8_t *r, const struct snp_report_req *req) {
  static const uint8_t tcb[8] = { 3, 0, 0, 0, 0, 0, 8, 0x73 }; /* bl 3, snp 8, ucode 0x73 (Milan) */
  memset(r, 0, SHIM_REPORT_SIZE);
  put32(r + 0x000, (uint32_t)report_version);
  put64(r + 0x008, 0x3001fULL);                     /* policy: ABI 0.31, SMT, reserved bit 17 */
  put32(r + 0x030, req->vmpl);
  put32(r + 0x034, 1);                              /* ECDSA P-384 with SHA-384 */
  memcpy(r + 0x038, tcb, 8);                        /* CURRENT_TCB */
  put64(r + 0x040, report_version >= 3 ? 0x25 : 0x05); /* SMT_EN, ECC_EN (+ ALIAS_CHECK v3) */
  memcpy(r + 0x050, req->user_data, 64);
  for (int i = 0; i < 48; i++) r[0x090 + i] = (uint8_t)(0x11 + 5 * i); /* MEASUREMENT */
  for (int i = 0; i < 32; i++) r[0x140 + i] = (uint8_t)(0x42 + 3 * i); /* REPORT_ID */
  memset(r + 0x160, 0xff, 32);                      /* REPORT_ID_MA: no migration agent */
  memcpy(r + 0x180, tcb, 8);                        /* REPORTED_TCB */
  if (report_version >= 3) { r[0x188] = 0x19; r[0x189] = 0x01; r[0x18A] = 0x01; } /* Milan B1 */
  for (int i = 0; i < 64; i++) r[0x1A0 + i] = (uint8_t)(0xC0 ^ i); /* CHIP_ID */
  memcpy(r + 0x1E0, tcb, 8);                        /* COMMITTED_TCB */
  r[0x1E8] = 21; r[0x1E9] = 55; r[0x1EA] = 1;       /* CURRENT build/minor/major */
  r[0x1EC] = 21; r[0x1ED] = 55; r[0x1EE] = 1;       /* COMMITTED */
  memcpy(r + 0x1F0, tcb, 8);                        /* LAUNCH_TCB */
  sign_report(r);
}

/* MSG_REPORT_RSP: status, report_size, 24 reserved bytes, then the report. */
static void build_response(uint8_t *resp, size_t len, const struct snp_report_req *req) {
  memset(resp, 0, len);
  if (mode == MODE_BAD_STATUS || req->vmpl > 3) {
    put32(resp, SHIM_FW_INVALID_PARAM);
    return;
  }
  build_report(resp + 0x20, req);
  put32(resp + 4, mode == MODE_BAD_SIZE ? 0x400 : SHIM_REPORT_SIZE);
}

static void record_calls(void) {
  if (count_file == NULL) return;
  pthread_mutex_lock(&count_mutex);
  FILE *f = fopen(count_file, "w");
  if (f != NULL) {
    fprintf(f, "{\"calls\":%d,\"maxConcurrent\":%d}\n", atomic_load(&calls), atomic_load(&max_in_flight));
    fclose(f);
  }
  pthread_mutex_unlock(&count_mutex);
}

/* Counts callers inside the syscall; the pause makes two overlapping callers visible. */
static void enter_call(void) {
  atomic_fetch_add(&calls, 1);
  int now = atomic_fetch_add(&in_flight, 1) + 1;
  int seen = atomic_load(&max_in_flight);
  while (now > seen && !atomic_compare_exchange_weak(&max_in_flight, &seen, now)) {}
  if (count_file != NULL) {
    struct timespec ts = { 0, 5 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
}

static void leave_call(void) {
  atomic_fetch_sub(&in_flight, 1);
  record_calls();
}

/* A firmware fault; returns the negative errno and the exitinfo2 value to report. */
static int injected_fault(uint64_t *exitinfo2) {
  if (mode == MODE_EIO) {
    vmpck_wiped = 1; /* "Disabling VMPCK%d communication key to prevent IV reuse" */
    *exitinfo2 = SHIM_FW_INVALID_PARAM;
    return -EIO;
  }
  if (mode == MODE_EAGAIN && eagain_left > 0) {
    eagain_left--;
    *exitinfo2 = SHIM_VMM_BUSY << 32;
    return -EAGAIN;
  }
  return 0;
}

static int guest_get_report(struct snp_guest_request_ioctl *input) {
  if (input->req_data == 0 || input->resp_data == 0) return -EINVAL;
  struct snp_report_req req;
  memcpy(&req, (const void *)(uintptr_t)input->req_data, sizeof(req));
  uint64_t exitinfo2 = 0;
  int rc = injected_fault(&exitinfo2);
  input->exitinfo2 = exitinfo2;
  if (rc) return rc;
  uint8_t resp[SHIM_RESP_SIZE];
  build_response(resp, sizeof(resp), &req);
  memcpy((void *)(uintptr_t)input->resp_data, resp, sizeof(resp));
  return 0;
}

static int guest_ioctl(unsigned long request, void *argp) {
  struct snp_guest_request_ioctl input;
  if (argp == NULL) return -EFAULT;
  memcpy(&input, argp, sizeof(input));
  input.exitinfo2 = 0xff;
  if (!input.msg_version) return -EINVAL;
  pthread_mutex_lock(&cmd_mutex);
  int ret = -ENOTTY;
  if (!vmpck_wiped && request == SHIM_GET_REPORT) ret = guest_get_report(&input);
  pthread_mutex_unlock(&cmd_mutex);
  if (input.exitinfo2) memcpy(argp, &input, sizeof(input));
  return ret;
}

static int legacy_get_report(struct shim_legacy_request *g) {
  if (g->req_msg_type != 5 || g->rsp_msg_type != 6 || g->request_len != 96 ||
      g->response_len < SHIM_LEGACY_RESP_SIZE || g->request_uaddr == 0 || g->response_uaddr == 0) {
    return -EINVAL;
  }
  struct snp_report_req req;
  memcpy(&req, (const void *)(uintptr_t)g->request_uaddr, sizeof(req));
  uint64_t exitinfo2 = 0;
  int rc = injected_fault(&exitinfo2);
  g->error = (uint32_t)exitinfo2;
  if (rc) return rc;
  uint8_t resp[SHIM_LEGACY_RESP_SIZE];
  build_response(resp, sizeof(resp), &req);
  memcpy((void *)(uintptr_t)g->response_uaddr, resp, sizeof(resp));
  return 0;
}

static int legacy_ioctl(unsigned long request, void *argp) {
  struct shim_legacy_request g;
  if (argp == NULL) return -EFAULT;
  memcpy(&g, argp, sizeof(g));
  g.error = 0xff;
  if (!g.msg_version) return -EINVAL;
  pthread_mutex_lock(&cmd_mutex);
  int ret = -ENOTTY;
  if (!vmpck_wiped && request == SHIM_LEGACY_REPORT) ret = legacy_get_report(&g);
  pthread_mutex_unlock(&cmd_mutex);
  if (g.error) memcpy(argp, &g, sizeof(g));
  return ret;
}

int ioctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  void *argp = va_arg(ap, void *);
  va_end(ap);
  resolve();
  int kind = (fd >= 0 && fd < MAX_FDS) ? atomic_load(&fd_kind[fd]) : KIND_NONE;
  if (kind == KIND_NONE) return real_ioctl(fd, request, argp);
  enter_call();
  int ret = kind == KIND_GUEST ? guest_ioctl(request, argp) : legacy_ioctl(request, argp);
  leave_call();
  if (ret < 0) { errno = -ret; return -1; }
  return 0;
}
