/* `kindling launch`: Jupyter Enterprise Gateway's remote kernel launcher protocol. The launcher
 * picks the kernel's ports (in EG's port range), writes a connection file, sends the connection
 * info to EG's response address encrypted with EG's public key, runs the kernel, and obeys
 * {"signum": n} and {"shutdown": 1} requests that EG sends to its communication port. */
#ifndef KL_KERNEL_LAUNCH_H
#define KL_KERNEL_LAUNCH_H

#include <stddef.h>

/* Version of the payload layout EG's response manager reads ({"version", "key", "conn_info"}). */
#define KL_LAUNCH_PAYLOAD_VERSION 1

/* Parses EG's "LOWER..UPPER" port range ("" or NULL means 0..0: any free port). A non-empty
 * range must span at least min_size ports and lie within 1024..65535. 0, or -1 with a message. */
int kl_launch_parse_port_range(const char *text, int min_size, int *lower, int *upper, char *err,
                               size_t errlen);

/* Encrypts plain as EG expects: AES-128-ECB with PKCS#7 padding under a fresh random key, that
 * key RSA-encrypted (PKCS#1 v1.5) with public_key (base64 DER SubjectPublicKeyInfo, as EG sends
 * it, or a PEM), both base64 in the JSON {"version", "key", "conn_info"}, itself base64. Returns a
 * malloc'd NUL-terminated string (caller frees), or NULL with a message in err. */
char *kl_launch_encrypt(const char *public_key, const unsigned char *plain, size_t len, char *err,
                        size_t errlen);

/* The `kindling launch` command: argv[0] is the command name. Returns the process exit code. */
int kl_launch_main(int argc, char **argv);

#endif
