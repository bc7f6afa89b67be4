/*
 * The SEV-SNP guest ioctl ABI, hard-coded rather than taken from <linux/sev-guest.h>: build
 * hosts and container images may carry headers older than the kernel we run on (5.x headers
 * spell exitinfo2 as fw_err and lack the VMM error split), and the legacy 5.15 /dev/sev ABI
 * was never upstream. The static_asserts pin every size and offset to the values checked in
 * docs/sev-snp.md#guest-request-ioctls against linux-libc-dev 6.1 (include/uapi/linux/sev-guest.h) and to
 * csc tools/get-snp-report/snp-ioctl5.h for the legacy struct.
 *
 * Plain C11 / C++17 so the test shim can share it when the kernel header is absent.
 */
#ifndef SKR_SEV_GUEST_ABI_H
#define SKR_SEV_GUEST_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define SKR_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define SKR_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* ---- /dev/sev-guest (Linux >= 5.19 upstream driver) ------------------------------------ */

#define SNP_GUEST_REQ_IOC_TYPE 'S'
#define SNP_GET_REPORT 0xC0205300UL        /* _IOWR('S', 0x0, struct snp_guest_request_ioctl) */
#define SNP_GET_DERIVED_KEY 0xC0205301UL   /* _IOWR('S', 0x1, ...) */
#define SNP_GET_EXT_REPORT 0xC0205302UL    /* _IOWR('S', 0x2, ...) */

#define SNP_REPORT_USER_DATA_SIZE 64
#define SNP_REPORT_RESP_SIZE 4000
#define SNP_MSG_VERSION 1

/* exitinfo2: bits 31:0 firmware (PSP) status, bits 63:32 VMM error. */
#define SNP_GUEST_FW_ERR_MASK 0xFFFFFFFFULL
#define SNP_GUEST_VMM_ERR_SHIFT 32
#define SNP_GUEST_VMM_ERR_INVALID_LEN 1
#define SNP_GUEST_VMM_ERR_BUSY 2

/* MSG_REPORT_RSP (SNP ABI 56860 Table 25): status u32, report_size u32, 24 reserved bytes. */
#define MSG_REPORT_RSP_HDR_SIZE 0x20
#define SNP_ATTESTATION_REPORT_SIZE 0x4A0
#define SEV_RET_INVALID_PARAM 0x16
#define SEV_RET_INVALID_KEY 0x27

/* exitinfo2 is a union { u64; { u32 fw_error; u32 vmm_error; } } in 6.x headers and a plain
 * u64 fw_err before: same bytes, so keep the u64 and split it with the masks above. */
struct snp_guest_request_ioctl {
  uint8_t msg_version; /* must be non-zero, else EINVAL */
  uint64_t req_data;
  uint64_t resp_data;
  uint64_t exitinfo2;
};

struct snp_report_req {
  uint8_t user_data[SNP_REPORT_USER_DATA_SIZE];
  uint32_t vmpl;
  uint8_t rsvd[28]; /* must be zero */
};

struct snp_report_resp {
  uint8_t data[SNP_REPORT_RESP_SIZE]; /* the kernel always copies all 4000 bytes */
};

SKR_STATIC_ASSERT(sizeof(struct snp_guest_request_ioctl) == 32, "snp_guest_request_ioctl is 32 bytes");
SKR_STATIC_ASSERT(offsetof(struct snp_guest_request_ioctl, msg_version) == 0, "msg_version @0");
SKR_STATIC_ASSERT(offsetof(struct snp_guest_request_ioctl, req_data) == 8, "req_data @8");
SKR_STATIC_ASSERT(offsetof(struct snp_guest_request_ioctl, resp_data) == 16, "resp_data @16");
SKR_STATIC_ASSERT(offsetof(struct snp_guest_request_ioctl, exitinfo2) == 24, "exitinfo2 @24");
SKR_STATIC_ASSERT(sizeof(struct snp_report_req) == 96, "snp_report_req is 96 bytes");
SKR_STATIC_ASSERT(offsetof(struct snp_report_req, vmpl) == 64, "vmpl @64");
SKR_STATIC_ASSERT(offsetof(struct snp_report_req, rsvd) == 68, "rsvd @68");
SKR_STATIC_ASSERT(sizeof(struct snp_report_resp) == 4000, "snp_report_resp is 4000 bytes");

/* ---- legacy /dev/sev (5.15-era Confidential ACI UVMs; out-of-tree psp-sev-guest.h) ------- */

#define SEV_SNP_GUEST_MSG_REPORT 0xC0285301UL /* _IOWR('S', 0x1, struct sev_snp_guest_request) */
#define SNP_MSG_REPORT_REQ 5
#define SNP_MSG_REPORT_RSP 6
#define SEV_SNP_REPORT_REQ_BUF_SZ 96
#define SEV_SNP_REPORT_RSP_BUF_SZ 1280 /* 32-byte header + 1184-byte report + 64 padding */

struct sev_snp_guest_request {
  uint8_t req_msg_type;
  uint8_t rsp_msg_type;
  uint8_t msg_version;
  uint16_t request_len;
  uint64_t request_uaddr;
  uint16_t response_len;
  uint64_t response_uaddr;
  uint32_t error; /* firmware error code */
};

SKR_STATIC_ASSERT(sizeof(struct sev_snp_guest_request) == 40, "sev_snp_guest_request is 40 bytes");
SKR_STATIC_ASSERT(offsetof(struct sev_snp_guest_request, msg_version) == 2, "msg_version @2");
SKR_STATIC_ASSERT(offsetof(struct sev_snp_guest_request, request_len) == 4, "request_len @4");
SKR_STATIC_ASSERT(offsetof(struct sev_snp_guest_request, request_uaddr) == 8, "request_uaddr @8");
SKR_STATIC_ASSERT(offsetof(struct sev_snp_guest_request, response_len) == 16, "response_len @16");
SKR_STATIC_ASSERT(offsetof(struct sev_snp_guest_request, response_uaddr) == 24, "response_uaddr @24");
SKR_STATIC_ASSERT(offsetof(struct sev_snp_guest_request, error) == 32, "error @32");

/* The numbers must be what _IOWR computes from the sizes above, on any Linux target. */
#ifdef __linux__
#include <linux/ioctl.h>
SKR_STATIC_ASSERT(_IOWR(SNP_GUEST_REQ_IOC_TYPE, 0x0, struct snp_guest_request_ioctl) == SNP_GET_REPORT,
                  "SNP_GET_REPORT is 0xC0205300");
SKR_STATIC_ASSERT(_IOWR(SNP_GUEST_REQ_IOC_TYPE, 0x1, struct snp_guest_request_ioctl) == SNP_GET_DERIVED_KEY,
                  "SNP_GET_DERIVED_KEY is 0xC0205301");
SKR_STATIC_ASSERT(_IOWR(SNP_GUEST_REQ_IOC_TYPE, 0x2, struct snp_guest_request_ioctl) == SNP_GET_EXT_REPORT,
                  "SNP_GET_EXT_REPORT is 0xC0205302");
SKR_STATIC_ASSERT(_IOWR(SNP_GUEST_REQ_IOC_TYPE, 0x1, struct sev_snp_guest_request) == SEV_SNP_GUEST_MSG_REPORT,
                  "SEV_SNP_GUEST_MSG_REPORT is 0xC0285301");
#endif

#endif /* SKR_SEV_GUEST_ABI_H */
