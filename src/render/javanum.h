/* Floating-point numbers as java.lang.Double.toString / Float.toString print them, which is what
 * Spark shows: the shortest decimal that reads back as the same value (at least two significant
 * digits, the closer one on a tie of length), "NaN", "Infinity", "-0.0"; plain notation with at
 * least one fractional digit for 1e-3 <= |x| < 1e7 ("100.0", "0.001"), otherwise computerized
 * scientific notation ("1.0E7", "9.999E-4").
 *
 * This is the JDK 19+ definition (JDK-4511638). JDK 17 and older sometimes print one or two more
 * digits than needed, mostly for integers between 1e16 and 1e19 (2 in 1000 random doubles) and
 * for a few values such as 1.0E23 ("9.999999999999999E22"); a Spark on Java 17 shows those
 * longer forms, which still read back as the same number. */
#ifndef KL_RENDER_JAVANUM_H
#define KL_RENDER_JAVANUM_H

#include <stddef.h>

#define KL_JAVANUM_LEN 32

/* Write NUL-terminated text into buf and return its length. */
size_t kl_javanum_double(double v, char buf[KL_JAVANUM_LEN]);
size_t kl_javanum_float(float v, char buf[KL_JAVANUM_LEN]);

#endif
