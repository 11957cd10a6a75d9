/* Checks the HTTPS certificate and key files before the listener starts, so
 * that a wrong file is reported by name and reason rather than as a failed
 * listen. */
#ifndef WEFT_TLSFILES_H
#define WEFT_TLSFILES_H

/* WEFT_OK when cert_path holds at least one PEM certificate (the server's
 * first, then its chain) and key_path an unencrypted PEM private key that
 * matches the first certificate; otherwise WEFT_EINVAL with *err naming the
 * setting, the file and what is wrong. Logs a warning when the certificate
 * is expired, not yet valid, or expires within 14 days. */
int tlsfiles_check(const char *cert_path, const char *key_path, char **err);

#endif
