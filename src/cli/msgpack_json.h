/* msgpack <-> JSON for `kindling call --msgpack`.
 *
 * Decoding: nil, booleans, integers, floats, strings, arrays and maps map to their JSON
 * counterparts (map keys that are not strings become their JSON text; unsigned integers above
 * 2^63-1 and NaN/infinities become strings); bin becomes {"base64": "..."}; the timestamp
 * extension (type -1) becomes an ISO 8601 UTC string with nanoseconds; other extensions become
 * {"ext": TYPE, "base64": "..."}. A buffer holding several values decodes to an array of them. */
#ifndef KL_CLI_MSGPACK_JSON_H
#define KL_CLI_MSGPACK_JSON_H

#include <jansson.h>
#include <stddef.h>

/* New reference, or NULL with a reason in err when data is not msgpack. */
json_t *kl_cli_msgpack_to_json(const void *data, size_t len, char *err, size_t errlen);
/* Packs a JSON value; malloc'd bytes (caller frees) and their length, or NULL. */
void *kl_cli_json_to_msgpack(const json_t *v, size_t *len);

#endif
