/* Floating-point numbers as java.lang.Double.toString / Float.toString print them on Java 17,
 * which is what Spark shows: "NaN", "Infinity", "-0.0"; plain notation with at least one
 * fractional digit for 1e-3 <= |x| < 1e7 ("100.0", "0.001"), otherwise computerized scientific
 * notation ("1.0E7", "9.999E-4").
 *
 * The digits are JDK 17's (FloatingDecimal, the same since JDK 1.4): usually the shortest decimal
 * that reads back as the value, but not always: about 3 in 1000 random doubles, mostly integers
 * between 1e16 and 1e19 and subnormals, get one or more extra digits ("2.82879384806159008E17",
 * "9.999999999999999E22" for 1e23, "1.0E-322" for 20 * 2^-1074), and floats that are large
 * integers keep their integer digits ("2.14748365E9" for 2^31). JDK 19+ prints the shortest
 * (JDK-4511638); a Spark server on Java 17 prints these, so the renderer does too. The details
 * of the algorithm are in javanum.c. */
#ifndef KL_RENDER_JAVANUM_H
#define KL_RENDER_JAVANUM_H

#include <stddef.h>

#define KL_JAVANUM_LEN 32

/* Write NUL-terminated text into buf and return its length. */
size_t kl_javanum_double(double v, char buf[KL_JAVANUM_LEN]);
size_t kl_javanum_float(float v, char buf[KL_JAVANUM_LEN]);

#endif
