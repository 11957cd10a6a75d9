#include "duration.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

int duration_parse_ms(const char *s, long long *out_ms)
{
	static const struct { const char *unit; double ms; } units[] = {
		{ "ns", 1e-6 }, { "us", 1e-3 }, { "\xc2\xb5s", 1e-3 }, { "ms", 1 },
		{ "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	double total = 0;
	int any = 0;

	if (s == NULL || *s == '\0')
		return -1;
	if (strcmp(s, "0") == 0) {
		*out_ms = 0;
		return 0;
	}
	while (*s) {
		double val = 0, frac = 0, scale = 1;
		int digits = 0;
		size_t best = 0, i;
		double mul = 0;

		while (isdigit((unsigned char)*s)) {
			val = val * 10 + (*s++ - '0');
			digits++;
		}
		if (*s == '.') {
			s++;
			while (isdigit((unsigned char)*s)) {
				scale /= 10;
				frac += (*s++ - '0') * scale;
				digits++;
			}
		}
		if (digits == 0)
			return -1;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t ul = strlen(units[i].unit);
			if (strncmp(s, units[i].unit, ul) == 0 && ul > best) {
				best = ul;
				mul = units[i].ms;
			}
		}
		if (best == 0)
			return -1;
		s += best;
		total += (val + frac) * mul;
		if (total > 9.2e15)
			return -1;
		any = 1;
	}
	if (!any)
		return -1;
	*out_ms = (long long)(total + 0.5);
	return 0;
}

void duration_format(long long ms, char *out, unsigned size)
{
	long long h = ms / 3600000, m = (ms / 60000) % 60;
	double sec = (double)(ms % 60000) / 1000.0;

	if (ms == 0)
		snprintf(out, size, "0s");
	else if (ms < 1000)
		snprintf(out, size, "%lldms", ms);
	else if (h)
		snprintf(out, size, "%lldh%lldm%gs", h, m, sec);
	else if (m)
		snprintf(out, size, "%lldm%gs", m, sec);
	else
		snprintf(out, size, "%gs", sec);
}
