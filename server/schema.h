/* Versioned schema migrations, applied in order at open. */
#ifndef WEFT_SCHEMA_H
#define WEFT_SCHEMA_H

struct db;

/* Brings the database to the newest version; returns WEFT_OK or an error. */
int schema_migrate(struct db *db, char **err);
int schema_version_latest(void);

#endif
