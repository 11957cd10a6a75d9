/* Regular expressions for untrusted patterns: RE2-style syntax (what Go and
 * so Consul users write) translated to POSIX ERE for glibc's regcomp, with
 * the patterns that would make regcomp or regexec blow up refused first. */
#include "rx.h"
#include "err.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* A rough size of the automaton glibc builds: atoms count one, a counted
 * repetition copies what it repeats n times and "+" copies it once more.
 * Returns the size, or -1 when over limit, -2 for stacked repetitions
 * (a**, a{2}+), which RE2 refuses too and which multiply glibc's copies. */
static long rx_cost(const char *re, long limit)
{
	long stack[64];
	int sp = 0, rep = 0;   /* rep: 1 after a repetition, 2 after its lazy "?" */
	long cost = 0, last = 0;

	for (size_t i = 0; re[i]; i++) {
		char c = re[i];
		int is_rep = c == '*' || c == '+' || c == '?' ||
			     (c == '{' && isdigit((unsigned char)re[i + 1]));
		if (is_rep) {
			if (rep == 1 && c == '?') {
				rep = 2;
				continue;
			}
			if (rep)
				return -2;
			rep = 1;
		} else {
			rep = 0;
		}
		if (c == '(') {
			if (sp == 64)
				return -1;
			stack[sp++] = cost;
			cost = 0;
			last = 0;
		} else if (c == ')') {
			last = cost;
			cost = (sp ? stack[--sp] : 0) + last;
		} else if (c == '[') {
			size_t j = i + 1;
			if (re[j] == '^')
				j++;
			if (re[j] == ']')
				j++;
			while (re[j] && re[j] != ']') {
				if (re[j] == '[' && (re[j + 1] == ':' || re[j + 1] == '.' || re[j + 1] == '=')) {
					char close = re[j + 1];
					j += 2;
					while (re[j] && !(re[j] == close && re[j + 1] == ']'))
						j++;
					if (re[j])
						j += 2;
					continue;
				}
				j++;
			}
			i = re[j] ? j : j - 1;
			last = 1;
			cost += 1;
		} else if (c == '\\') {
			if (re[i + 1])
				i++;
			last = 1;
			cost += 1;
		} else if (c == '{') {
			long m = 0, n = -1;
			size_t j = i + 1;
			while (isdigit((unsigned char)re[j]) && m <= 1000)
				m = m * 10 + (re[j++] - '0');
			if (re[j] == ',') {
				j++;
				if (isdigit((unsigned char)re[j])) {
					n = 0;
					while (isdigit((unsigned char)re[j]) && n <= 1000)
						n = n * 10 + (re[j++] - '0');
				}
			}
			if (m > 1000 || n > 1000)
				return -1;
			if (n < m)
				n = m;
			if (n < 1)
				n = 1;
			cost += last * n;
			last = last * n;
			i = re[j] == '}' ? j : j - 1;
		} else if (c == '+') {
			cost += last;
			last *= 2;
		} else if (c == '*' || c == '?') {
			cost += 1;
		} else {
			last = 1;
			cost += 1;
		}
		if (cost > limit || last > limit)
			return -1;
	}
	return cost;
}

/* Go's RE2 syntax to POSIX ERE for what users write: \d and \D, classes in
 * brackets, a leading (?i), (?:...). Refuses back-references (RE2 has none and they
 * make matching exponential). */
static char *rx_translate(const char *in, size_t len, int *icase, const char **why)
{
	char *out = malloc(len * 12 + 1);
	size_t o = 0, i = 0;
	int in_br = 0;

	*icase = 0;
	if (out == NULL) {
		*why = "out of memory";
		return NULL;
	}
	if (len >= 4 && memcmp(in, "(?i)", 4) == 0) {
		*icase = 1;
		i = 4;
	}
	for (; i < len; i++) {
		char c = in[i];
		if (c == '\0') {
			*why = "must not contain NUL bytes";
			goto fail;
		}
		if (in_br) {
			if (c == ']' && in_br > 1) {
				in_br = 0;
				out[o++] = c;
				continue;
			}
			in_br++;
			if (c == '[' && i + 1 < len && strchr(":.=", in[i + 1])) {
				/* [:class:] copied whole */
				char close = in[i + 1];
				out[o++] = in[i++];
				out[o++] = in[i++];
				while (i < len && !(in[i] == close && i + 1 < len && in[i + 1] == ']'))
					out[o++] = in[i++];
				if (i < len) {
					out[o++] = in[i++];
					out[o++] = in[i];
				}
				continue;
			}
			if (c == '^' && in_br == 2 && in[i - 1] == '[') {
				in_br = 1;   /* a leading ^ does not count */
				out[o++] = c;
				continue;
			}
			if (c == '\\' && i + 1 < len) {
				char e = in[++i];
				const char *rep = NULL;
				if (e == 'd')
					rep = "0-9";
				else if (e == 'w')
					rep = "A-Za-z0-9_";
				else if (e == 's')
					rep = "[:space:]";
				else if (e == '\\' || e == '.' || e == '+' || e == '*' || e == '?' ||
					 e == '(' || e == ')' || e == '{' || e == '}' || e == '|' ||
					 e == '$' || e == '/' || e == '_' || e == ':' || e == ',' ||
					 e == '#' || e == '&' || e == '~' || e == '@' || e == '!' ||
					 e == '%' || e == '=' || e == '<' || e == '>' || e == '\'' ||
					 e == '"' || e == ';' || e == '`')
					out[o++] = e;
				else {
					*why = "this escape is not supported inside [ ] (put - last and ] first instead)";
					goto fail;
				}
				if (rep) {
					memcpy(out + o, rep, strlen(rep));
					o += strlen(rep);
				}
				continue;
			}
			out[o++] = c;
			continue;
		}
		if (c == '[') {
			in_br = 1;
			out[o++] = c;
			continue;
		}
		if (c == '(' && i + 2 < len && in[i + 1] == '?' && in[i + 2] == ':') {
			out[o++] = c;   /* (?:x) groups without capturing: the same to us */
			i += 2;
			continue;
		}
		if (c == '\\' && i + 1 < len) {
			char e = in[i + 1];
			if (e >= '1' && e <= '9') {
				*why = "back-references are not supported";
				goto fail;
			}
			if (e == 'd' || e == 'D') {
				const char *rep = e == 'd' ? "[0-9]" : "[^0-9]";
				memcpy(out + o, rep, 5 + (e == 'D'));
				o += 5 + (e == 'D');
				i++;
				continue;
			}
			out[o++] = c;
			out[o++] = in[++i];
			continue;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

int rx_compile(regex_t *re, const char *pattern, size_t len, long *budget, char **err)
{
	const char *why = NULL;
	char msg[160], *pat;
	long limit = budget && *budget < RX_MAX_COST ? *budget : RX_MAX_COST, cost;
	int icase = 0, rc;

	if (len > RX_MAX_LEN)
		return weft_errf(err, WEFT_EINVAL, "longer than %d bytes", RX_MAX_LEN);
	pat = rx_translate(pattern, len, &icase, &why);
	if (pat == NULL)
		return weft_errf(err, WEFT_EINVAL, "%s", why);
	cost = rx_cost(pat, limit);
	if (cost < 0) {
		free(pat);
		if (cost == -2)
			return weft_errf(err, WEFT_EINVAL, "a repetition operator cannot follow another");
		if (limit < RX_MAX_COST)
			return weft_errf(err, WEFT_EINVAL,
					 "too complex (with the patterns before it, repetitions multiply past %d)",
					 RX_MAX_COST);
		return weft_errf(err, WEFT_EINVAL, "too complex (repetitions multiply past %d)",
				 RX_MAX_COST);
	}
	rc = regcomp(re, pat, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
	free(pat);
	if (rc != 0) {
		regerror(rc, NULL, msg, sizeof(msg));
		return weft_errf(err, WEFT_EINVAL, "%s", msg);
	}
	if (budget)
		*budget -= cost;
	return WEFT_OK;
}

int rx_match(const regex_t *re, const char *s, size_t len)
{
	regmatch_t m[1];

	m[0].rm_so = 0;
	m[0].rm_eo = (regoff_t)len;
	return regexec(re, s, 1, m, REG_STARTEND) == 0;
}
