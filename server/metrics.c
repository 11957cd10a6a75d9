#include "metrics.h"
#include "castore.h"
#include "catalog.h"
#include "err.h"
#include "http.h"
#include "hub.h"
#include "server.h"
#include "proxysnap.h"
#include "snapcache.h"
#include "store.h"
#include "ttl.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- collection ---- */

static void family(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void store_metrics(struct server *srv, struct buf *out)
{
	struct store_stats s;
	uint64_t cum = 0;

	store_stats(srv->store, &s);
	family(out, "weft_store_commits_total", "counter",
	       "Store transactions committed (each may carry several writes).");
	buf_printf(out, "weft_store_commits_total %llu\n", (unsigned long long)s.commits);
	family(out, "weft_store_writes_total", "counter", "Writes applied by the store.");
	buf_printf(out, "weft_store_writes_total %llu\n", (unsigned long long)s.writes);
	family(out, "weft_store_commit_duration_seconds", "histogram",
	       "Time to make one group commit durable.");
	for (size_t b = 0; b < 12; b++) {
		cum += s.commit_us_buckets[b];
		if (b < 11)
			buf_printf(out, "weft_store_commit_duration_seconds_bucket{le=\"%g\"} %llu\n",
				   store_commit_bucket_bounds_s[b], (unsigned long long)cum);
		else
			buf_printf(out, "weft_store_commit_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
				   (unsigned long long)cum);
	}
	buf_printf(out, "weft_store_commit_duration_seconds_sum %.6f\n"
			"weft_store_commit_duration_seconds_count %llu\n",
		   (double)s.commit_us_total / 1e6, (unsigned long long)s.commits);
	family(out, "weft_store_size_bytes", "gauge", "Size of the database and its write-ahead log.");
	buf_printf(out, "weft_store_size_bytes %lld\n", (long long)s.file_bytes);
	family(out, "weft_store_index", "gauge", "The store's last modify index (Raft index in Consul).");
	buf_printf(out, "weft_store_index %llu\n", (unsigned long long)store_last_index(srv->store));
}

static void snapcache_metrics(struct server *srv, struct buf *out)
{
	struct snapcache_stats st;
	struct proxysnap_counters pc;

	proxysnap_counters(&pc);
	family(out, "weft_proxy_snapshot_answers_total", "counter",
	       "Proxy snapshots answered (blocking queries that wake or park included), by source.");
	buf_printf(out, "weft_proxy_snapshot_answers_total{source=\"cache\"} %llu\n"
			"weft_proxy_snapshot_answers_total{source=\"built\"} %llu\n",
		   (unsigned long long)pc.answers_cached,
		   (unsigned long long)(pc.answers - pc.answers_cached));
	family(out, "weft_proxy_snapshot_builds_total", "counter",
	       "Proxy snapshots computed from the store (a few passes per answer built).");
	buf_printf(out, "weft_proxy_snapshot_builds_total %llu\n", (unsigned long long)pc.builds);
	family(out, "weft_proxy_snapshot_endpoint_scans_total", "counter",
	       "Upstream endpoints computed from the store (once per change, shared by proxies).");
	buf_printf(out, "weft_proxy_snapshot_endpoint_scans_total %llu\n",
		   (unsigned long long)pc.endpoint_scans);
	if (srv->snapshots == NULL)
		return;
	snapcache_stats(srv->snapshots, &st);
	family(out, "weft_proxy_snapshot_cache_lookups_total", "counter",
	       "Lookups of proxy snapshots and their parts in the cache, by result.");
	buf_printf(out, "weft_proxy_snapshot_cache_lookups_total{result=\"hit\"} %llu\n"
			"weft_proxy_snapshot_cache_lookups_total{result=\"miss\"} %llu\n",
		   (unsigned long long)st.hits, (unsigned long long)st.misses);
	family(out, "weft_proxy_snapshot_cache_dropped_total", "counter",
	       "Cache entries dropped: stale (a topic moved) or evicted (memory bound).");
	buf_printf(out, "weft_proxy_snapshot_cache_dropped_total{reason=\"stale\"} %llu\n"
			"weft_proxy_snapshot_cache_dropped_total{reason=\"evicted\"} %llu\n",
		   (unsigned long long)st.stale, (unsigned long long)st.evictions);
	family(out, "weft_proxy_snapshot_cache_entries", "gauge", "Entries in the snapshot cache.");
	buf_printf(out, "weft_proxy_snapshot_cache_entries %zu\n", st.entries);
	family(out, "weft_proxy_snapshot_cache_bytes", "gauge",
	       "Memory the snapshot cache accounts for (bounded by --snapshot-cache-mb).");
	buf_printf(out, "weft_proxy_snapshot_cache_bytes %zu\n", st.bytes);
}

static void hub_metrics(struct server *srv, struct buf *out)
{
	family(out, "weft_blocking_queries", "gauge", "Blocking queries waiting for a change.");
	buf_printf(out, "weft_blocking_queries %zu\n", hub_waiting(srv->hub));
	family(out, "weft_hub_topics", "gauge", "Topics the watch hub tracks.");
	buf_printf(out, "weft_hub_topics %zu\n", hub_topic_count(srv->hub));
}

static int64_t count_rows(struct db *db, struct db_stmt *st)
{
	int64_t n = 0;

	(void)db;
	if (st == NULL)
		return 0;
	if (db_step(st) == DB_ROW)
		n = db_col_int(st, 0);
	db_done(st);
	return n;
}

static void catalog_metrics(struct server *srv, struct buf *out)
{
	struct db *db = store_read_begin(srv->store);
	struct db_stmt *st;
	const char *states[] = { "passing", "warning", "critical" };
	int64_t by_state[3] = { 0, 0, 0 };

	if (db == NULL)
		return;
	family(out, "weft_catalog_nodes", "gauge", "Nodes in the catalog.");
	buf_printf(out, "weft_catalog_nodes %lld\n",
		   (long long)count_rows(db, db_prep(db, "SELECT COUNT(*) FROM nodes")));
	family(out, "weft_catalog_service_instances", "gauge", "Service instances in the catalog.");
	buf_printf(out, "weft_catalog_service_instances %lld\n",
		   (long long)count_rows(db, db_prep(db, "SELECT COUNT(*) FROM services")));
	family(out, "weft_catalog_services", "gauge", "Distinct service names in the catalog.");
	buf_printf(out, "weft_catalog_services %lld\n",
		   (long long)count_rows(db, db_prep(db, "SELECT COUNT(DISTINCT name) FROM services")));
	st = db_prep(db, "SELECT status, COUNT(*) FROM checks GROUP BY status");
	if (st) {
		while (db_step(st) == DB_ROW)
			for (int i = 0; i < 3; i++)
				if (strcmp(db_col_text(st, 0), states[i]) == 0)
					by_state[i] = db_col_int(st, 1);
		db_done(st);
	}
	store_read_end(db);
	family(out, "weft_catalog_checks", "gauge", "Health checks in the catalog by status.");
	for (int i = 0; i < 3; i++)
		buf_printf(out, "weft_catalog_checks{status=\"%s\"} %lld\n", states[i],
			   (long long)by_state[i]);
	family(out, "weft_ttl_checks_expired_total", "counter",
	       "TTL checks turned critical because no update came within their TTL.");
	buf_printf(out, "weft_ttl_checks_expired_total %llu\n",
		   (unsigned long long)ttl_expired_total(srv->ttl));
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;   /* the directory's own descriptor */
}

static void process_metrics(struct server *srv, struct buf *out)
{
	char stat[1024], *p;
	FILE *f = fopen("/proc/self/stat", "r");
	unsigned long long utime = 0, stime = 0, vsize = 0;
	long long rss_pages = 0, threads = 0;
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	size_t n = 0;
	int fds = count_fds();

	if (f) {
		n = fread(stat, 1, sizeof(stat) - 1, f);
		fclose(f);
	}
	stat[n] = '\0';
	/* Fields after the command name, which may hold spaces: state is 3rd. */
	p = strrchr(stat, ')');
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d"
			      " %lld %*d %*u %llu %lld", &utime, &stime, &threads, &vsize, &rss_pages) != 5)
		utime = stime = vsize = 0, threads = rss_pages = 0;
	if (ticks <= 0)
		ticks = 100;
	family(out, "weft_process_cpu_seconds_total", "counter", "User and system CPU time spent.");
	buf_printf(out, "weft_process_cpu_seconds_total %.2f\n", (double)(utime + stime) / (double)ticks);
	family(out, "weft_process_resident_memory_bytes", "gauge", "Resident memory size.");
	buf_printf(out, "weft_process_resident_memory_bytes %lld\n", rss_pages * (long long)page);
	family(out, "weft_process_virtual_memory_bytes", "gauge", "Virtual memory size.");
	buf_printf(out, "weft_process_virtual_memory_bytes %llu\n", vsize);
	family(out, "weft_process_threads", "gauge", "OS threads (Consul's goroutines, roughly).");
	buf_printf(out, "weft_process_threads %lld\n", threads);
	family(out, "weft_process_open_fds", "gauge", "Open file descriptors.");
	buf_printf(out, "weft_process_open_fds %d\n", fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		family(out, "weft_process_max_fds", "gauge", "The limit on open file descriptors.");
		buf_printf(out, "weft_process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
	family(out, "weft_process_start_time_seconds", "gauge", "Start time, seconds since the epoch.");
	buf_printf(out, "weft_process_start_time_seconds %.3f\n", (double)srv->started_ms / 1000.0);
	family(out, "weft_build_info", "gauge", "Always 1; the labels say which build runs.");
	buf_printf(out, "weft_build_info{version=\"%s\",datacenter=\"%s\",node=\"%s\"} 1\n",
		   srv->version, srv->datacenter, srv->node_name);
}

void metrics_prometheus(struct server *srv, struct buf *out)
{
	if (srv->http)
		http_metrics(srv->http, out);
	hub_metrics(srv, out);
	snapcache_metrics(srv, out);
	store_metrics(srv, out);
	catalog_metrics(srv, out);
	castore_metrics(srv->ca, out);
	process_metrics(srv, out);
}

/* ---- Consul's JSON form ---- */

/* Parses `name{a="b",...} value` into a name, a labels object and a value. */
static int parse_sample(const char *line, char *name, size_t name_size, json_t *labels,
			double *value, char **err)
{
	const char *p = line, *start = line;
	char key[128], *end;
	size_t n;

	while (*p && *p != '{' && *p != ' ')
		p++;
	n = (size_t)(p - start);
	if (n == 0 || n >= name_size)
		return weft_errf(err, WEFT_EINVAL, "metrics: bad metric name in \"%.60s\"", line);
	memcpy(name, start, n);
	name[n] = '\0';
	if (*p == '{') {
		p++;
		while (*p && *p != '}') {
			struct buf val;
			start = p;
			while (*p && *p != '=')
				p++;
			n = (size_t)(p - start);
			if (*p != '=' || p[1] != '"' || n == 0 || n >= sizeof(key))
				return weft_errf(err, WEFT_EINVAL, "metrics: bad label in \"%.60s\"", line);
			memcpy(key, start, n);
			key[n] = '\0';
			p += 2;
			buf_init(&val, 4096);
			while (*p && *p != '"') {
				char c = *p++;
				if (c == '\\' && *p) {
					c = *p++;
					if (c == 'n')
						c = '\n';
				}
				buf_append(&val, &c, 1);
			}
			if (*p != '"') {
				buf_free(&val);
				return weft_errf(err, WEFT_EINVAL, "metrics: unterminated label in \"%.60s\"", line);
			}
			p++;
			json_object_set_new(labels, key, json_string(val.data ? val.data : ""));
			buf_free(&val);
			if (*p == ',')
				p++;
		}
		if (*p != '}')
			return weft_errf(err, WEFT_EINVAL, "metrics: unterminated labels in \"%.60s\"", line);
		p++;
	}
	while (*p == ' ')
		p++;
	if (strcmp(p, "+Inf") == 0)
		*value = 1e308;
	else if (strcmp(p, "NaN") == 0)
		*value = 0;
	else {
		*value = strtod(p, &end);
		if (end == p)
			return weft_errf(err, WEFT_EINVAL, "metrics: bad value in \"%.60s\"", line);
	}
	return WEFT_OK;
}

/* The histogram entry of Samples for family+labels, created on first use. */
static json_t *sample_for(json_t *samples, const char *fam, json_t *labels)
{
	size_t i;
	json_t *s;

	json_array_foreach(samples, i, s)
		if (strcmp(json_string_value(json_object_get(s, "Name")), fam) == 0 &&
		    json_equal(json_object_get(s, "Labels"), labels))
			return s;
	s = json_pack("{s:s, s:I, s:f, s:f, s:O}", "Name", fam, "Count", (json_int_t)0, "Sum", 0.0,
		      "Mean", 0.0, "Labels", labels);
	json_array_append_new(samples, s);
	return s;
}

static const char *suffix_of(const char *name, const char *suffix)
{
	size_t n = strlen(name), m = strlen(suffix);

	return n > m && strcmp(name + n - m, suffix) == 0 ? name + n - m : NULL;
}

json_t *metrics_json(const char *text, int64_t now_wall_ms, char **err)
{
	json_t *types = json_object(), *gauges = json_array(), *counters = json_array(),
	       *samples = json_array(), *out = NULL, *s;
	const char *line = text;
	char ts[64], name[256], fam[256];
	time_t secs = (time_t)(now_wall_ms / 1000);
	struct tm tm;
	size_t i;

	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char *l = strndup(line, len);
		json_t *labels = json_object();
		const char *type, *suf;
		double v = 0;

		line = nl ? nl + 1 : NULL;
		if (l == NULL || labels == NULL) {
			free(l);
			json_decref(labels);
			weft_errf(err, WEFT_ENOMEM, "out of memory");
			goto out;
		}
		if (l[0] == '\0' || (l[0] == '#' && strncmp(l, "# TYPE ", 7) != 0)) {
			free(l);
			json_decref(labels);
			continue;
		}
		if (l[0] == '#') {
			char tn[256], tt[32];
			if (sscanf(l + 7, "%255s %31s", tn, tt) == 2)
				json_object_set_new(types, tn, json_string(tt));
			free(l);
			json_decref(labels);
			continue;
		}
		if (parse_sample(l, name, sizeof(name), labels, &v, err) != WEFT_OK) {
			free(l);
			json_decref(labels);
			goto out;
		}
		free(l);
		type = json_string_value(json_object_get(types, name));
		if (type == NULL) {
			/* name_bucket, name_sum, name_count of a histogram family */
			snprintf(fam, sizeof(fam), "%s", name);
			if ((suf = suffix_of(fam, "_bucket")) || (suf = suffix_of(fam, "_sum")) ||
			    (suf = suffix_of(fam, "_count")))
				fam[suf - fam] = '\0';
			type = json_string_value(json_object_get(types, fam));
			if (type && strcmp(type, "histogram") == 0 && !suffix_of(name, "_bucket")) {
				s = sample_for(samples, fam, labels);
				if (suffix_of(name, "_sum"))
					json_object_set_new(s, "Sum", json_real(v));
				else
					json_object_set_new(s, "Count", json_integer((json_int_t)v));
			}
			json_decref(labels);
			continue;
		}
		if (strcmp(type, "counter") == 0)
			json_array_append_new(counters,
					      json_pack("{s:s, s:I, s:f, s:o}", "Name", name,
							"Count", (json_int_t)v, "Sum", v, "Labels", labels));
		else
			json_array_append_new(gauges, json_pack("{s:s, s:f, s:o}", "Name", name,
								"Value", v, "Labels", labels));
	}
	json_array_foreach(samples, i, s) {
		json_int_t c = json_integer_value(json_object_get(s, "Count"));
		double sum = json_real_value(json_object_get(s, "Sum"));
		json_object_set_new(s, "Mean", json_real(c ? sum / (double)c : 0.0));
	}
	gmtime_r(&secs, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
	out = json_pack("{s:s, s:O, s:[], s:O, s:O}", "Timestamp", ts, "Gauges", gauges, "Points",
			"Counters", counters, "Samples", samples);
out:
	json_decref(types);
	json_decref(gauges);
	json_decref(counters);
	json_decref(samples);
	return out;
}
