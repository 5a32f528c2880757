/* Random (version 4) UUIDs from OpenSSL's CSPRNG. */
#ifndef KL_RUNTIME_UUID_H
#define KL_RUNTIME_UUID_H

#define KL_UUID_STRLEN 37 /* 36 characters and the NUL */

/* Writes a lower-case hyphenated UUID into out. Returns 0, or -1 if the RNG failed. */
int kl_uuid_v4(char out[KL_UUID_STRLEN]);

#endif
