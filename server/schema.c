#include "schema.h"
#include "err.h"
#include "log.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>

/* Each step runs once, in its own transaction, and is never edited after a
 * release: add a new step instead. JSON-valued columns hold compact JSON. */
static const char *const migrations[] = {
	/* 1: catalog, KV, sessions, tokens; zone and mesh are part of the model
	 * from the start so that federation does not need a rewrite. */
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"INSERT INTO meta (key, value) VALUES ('index', '1');"
	"CREATE TABLE nodes ("
	"  name TEXT PRIMARY KEY, id TEXT NOT NULL DEFAULT '', address TEXT NOT NULL,"
	"  datacenter TEXT NOT NULL, zone TEXT NOT NULL DEFAULT 'local',"
	"  tagged_addresses TEXT NOT NULL DEFAULT '{}', meta TEXT NOT NULL DEFAULT '{}',"
	"  create_index INTEGER NOT NULL, modify_index INTEGER NOT NULL);"
	"CREATE TABLE services ("
	"  node TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL,"
	"  kind TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '[]',"
	"  address TEXT NOT NULL DEFAULT '', port INTEGER NOT NULL DEFAULT 0,"
	"  meta TEXT NOT NULL DEFAULT '{}', tagged_addresses TEXT NOT NULL DEFAULT '{}',"
	"  weights TEXT NOT NULL DEFAULT '{\"Passing\":1,\"Warning\":1}',"
	"  enable_tag_override INTEGER NOT NULL DEFAULT 0,"
	"  proxy TEXT NOT NULL DEFAULT '{}', connect TEXT NOT NULL DEFAULT '{}',"
	"  mesh TEXT NOT NULL DEFAULT 'default',"
	"  create_index INTEGER NOT NULL, modify_index INTEGER NOT NULL,"
	"  PRIMARY KEY (node, id));"
	"CREATE INDEX services_by_name ON services (name);"
	"CREATE TABLE checks ("
	"  node TEXT NOT NULL, check_id TEXT NOT NULL, name TEXT NOT NULL,"
	"  status TEXT NOT NULL, notes TEXT NOT NULL DEFAULT '', output TEXT NOT NULL DEFAULT '',"
	"  service_id TEXT NOT NULL DEFAULT '', service_name TEXT NOT NULL DEFAULT '',"
	"  type TEXT NOT NULL DEFAULT '', definition TEXT NOT NULL DEFAULT '{}',"
	"  ttl_ms INTEGER NOT NULL DEFAULT 0, ttl_deadline INTEGER NOT NULL DEFAULT 0,"
	"  create_index INTEGER NOT NULL, modify_index INTEGER NOT NULL,"
	"  PRIMARY KEY (node, check_id));"
	"CREATE INDEX checks_by_service ON checks (service_name);"
	"CREATE INDEX checks_by_deadline ON checks (ttl_deadline) WHERE ttl_ms > 0;"
	"CREATE TABLE kv ("
	"  key TEXT PRIMARY KEY, value BLOB, flags INTEGER NOT NULL DEFAULT 0,"
	"  session TEXT, lock_index INTEGER NOT NULL DEFAULT 0,"
	"  create_index INTEGER NOT NULL, modify_index INTEGER NOT NULL);"
	"CREATE INDEX kv_by_session ON kv (session) WHERE session IS NOT NULL;"
	"CREATE TABLE kv_lock_delay (key TEXT PRIMARY KEY, until_ms INTEGER NOT NULL);"
	"CREATE TABLE sessions ("
	"  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', node TEXT NOT NULL,"
	"  node_checks TEXT NOT NULL DEFAULT '[]', service_checks TEXT NOT NULL DEFAULT '[]',"
	"  behavior TEXT NOT NULL DEFAULT 'release', ttl_ms INTEGER NOT NULL DEFAULT 0,"
	"  lock_delay_ms INTEGER NOT NULL DEFAULT 15000, expires_at INTEGER NOT NULL DEFAULT 0,"
	"  create_index INTEGER NOT NULL, modify_index INTEGER NOT NULL);"
	"CREATE INDEX sessions_by_node ON sessions (node);"
	"CREATE TABLE acl_tokens ("
	"  accessor TEXT PRIMARY KEY, kind TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',"
	"  service TEXT NOT NULL DEFAULT '', node TEXT NOT NULL DEFAULT '',"
	"  create_time INTEGER NOT NULL, expires_at INTEGER NOT NULL DEFAULT 0,"
	"  revoked_at INTEGER NOT NULL DEFAULT 0,"
	"  create_index INTEGER NOT NULL, modify_index INTEGER NOT NULL);",
	/* 2: policy. Meshes (the default one created here, with a random trust
	 * domain "<uuid>.weft" as Consul's "<cluster id>.consul") and config
	 * entries of every kind, per mesh; intentions are the Sources of
	 * service-intentions entries (server/config_store.h, intentions.h). */
	"CREATE TABLE meshes ("
	"  name TEXT PRIMARY KEY,"
	"  mtls_mode TEXT NOT NULL CHECK (mtls_mode IN ('strict', 'permissive')),"
	"  trust_domain TEXT NOT NULL,"
	"  default_action TEXT NOT NULL CHECK (default_action IN ('allow', 'deny')),"
	"  meta TEXT NOT NULL DEFAULT '{}',"
	"  create_index INTEGER NOT NULL, modify_index INTEGER NOT NULL);"
	"INSERT INTO meshes (name, mtls_mode, trust_domain, default_action, create_index,"
	"  modify_index) VALUES ('default', 'strict',"
	"  lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||"
	"  substr(lower(hex(randomblob(2))), 2) || '-' ||"
	"  substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) ||"
	"  '-' || lower(hex(randomblob(6))) || '.weft', 'deny', 1, 1);"
	"CREATE TABLE config_entries ("
	"  mesh TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
	"  body TEXT NOT NULL,"
	"  create_index INTEGER NOT NULL, modify_index INTEGER NOT NULL,"
	"  PRIMARY KEY (mesh, kind, name));",
	/* 3: whether a mesh's default intention action was chosen. An unchosen
	 * one is the server's default: deny, or allow under --dev. */
	"ALTER TABLE meshes ADD COLUMN default_action_set INTEGER NOT NULL DEFAULT 1;"
	"UPDATE meshes SET default_action_set = 0 WHERE name = 'default' AND"
	"  modify_index = create_index;",
	/* 4: the mesh CAs (server/castore.h): configuration and roots per mesh.
	 * sealed_key is the root's private key sealed under DATA_DIR/ca-seal.key;
	 * a rotated-out root (active 0) is deleted once remove_after_ms passes. */
	"CREATE TABLE ca_config ("
	"  mesh TEXT PRIMARY KEY, provider TEXT NOT NULL CHECK (provider IN ('weft', 'provided')),"
	"  leaf_ttl_ms INTEGER NOT NULL, rotation_ms INTEGER NOT NULL,"
	"  intermediate_ttl_ms INTEGER NOT NULL,"
	"  force_without_cross_signing INTEGER NOT NULL DEFAULT 0,"
	"  create_index INTEGER NOT NULL, modify_index INTEGER NOT NULL);"
	"CREATE TABLE ca_roots ("
	"  mesh TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',"
	"  serial INTEGER NOT NULL DEFAULT 0, signing_key_id TEXT NOT NULL DEFAULT '',"
	"  trust_domain TEXT NOT NULL, not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,"
	"  chain_not_after INTEGER NOT NULL DEFAULT 0, cert_pem TEXT NOT NULL,"
	"  intermediates TEXT NOT NULL DEFAULT '[]', sealed_key TEXT NOT NULL,"
	"  key_type TEXT NOT NULL DEFAULT 'ec', key_bits INTEGER NOT NULL DEFAULT 256,"
	"  active INTEGER NOT NULL DEFAULT 0, remove_after_ms INTEGER NOT NULL DEFAULT 0,"
	"  create_index INTEGER NOT NULL, modify_index INTEGER NOT NULL,"
	"  PRIMARY KEY (mesh, id));"
	"CREATE UNIQUE INDEX ca_roots_active ON ca_roots (mesh) WHERE active = 1;"
	"CREATE INDEX ca_roots_by_removal ON ca_roots (remove_after_ms) WHERE active = 0;",
	/* 5: a connect-proxy's destination as a column (Proxy.DestinationServiceName,
	 * written by the catalog), so that a snapshot finds an upstream's
	 * endpoints by index instead of scanning the mesh's proxies; services
	 * by ID. Existing rows get it from their stored Proxy. */
	"ALTER TABLE services ADD COLUMN proxy_dest TEXT NOT NULL DEFAULT '';"
	"UPDATE services SET proxy_dest = COALESCE(json_extract(proxy, '$.DestinationServiceName'), '')"
	"  WHERE kind = 'connect-proxy' AND json_valid(proxy);"
	"CREATE INDEX services_by_id ON services (id);"
	"CREATE INDEX services_by_proxy_dest ON services (mesh, proxy_dest) WHERE kind = 'connect-proxy';",
};

int schema_version_latest(void)
{
	return (int)(sizeof(migrations) / sizeof(migrations[0]));
}

static int schema_version(struct db *db)
{
	struct db_stmt *st = db_prep(db, "PRAGMA user_version");
	int v = -1;

	if (st == NULL)
		return -1;
	if (db_step(st) == DB_ROW)
		v = (int)db_col_int(st, 0);
	db_done(st);
	return v;
}

int schema_migrate(struct db *db, char **err)
{
	int cur = schema_version(db), latest = schema_version_latest();
	char pragma[64];

	if (cur < 0)
		return weft_errf(err, WEFT_EIO, "schema: cannot read the version: %s", db_errmsg(db));
	if (cur > latest)
		return weft_errf(err, WEFT_EINVAL,
				 "schema: the database is at version %d, newer than this weft-server (%d)",
				 cur, latest);
	for (int v = cur; v < latest; v++) {
		char *e = NULL;
		if (db_exec(db, "BEGIN IMMEDIATE", &e) != WEFT_OK)
			goto fail;
		if (db_exec(db, migrations[v], &e) != WEFT_OK) {
			db_exec(db, "ROLLBACK", NULL);
			goto fail;
		}
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		if (db_exec(db, pragma, &e) != WEFT_OK || db_exec(db, "COMMIT", &e) != WEFT_OK) {
			db_exec(db, "ROLLBACK", NULL);
			goto fail;
		}
		log_info("store", "migrated version=%d", v + 1);
		continue;
fail:
		weft_errf(err, WEFT_EIO, "schema: migration %d failed: %s", v + 1, e ? e : "?");
		free(e);
		return WEFT_EIO;
	}
	return WEFT_OK;
}
