/* weftctl ca roots|rotate|sign|config: the mesh CA (/v1/connect/ca/...).
 * The mesh is the global -mesh flag (default "default"). */
#include "ca.h"
#include "ctl.h"
#include "duration.h"
#include "err.h"
#include "input.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int no_args(const struct ctl_command *cmd, int npos, const char **pos)
{
	if (npos > 0)
		return ctl_usage(cmd, "unexpected argument \"%s\"", pos[0]);
	return CTL_CONTINUE;
}

/* ---- roots ---- */

static int run_roots(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	int pem = 0;
	const struct arg_opt opts[] = {
		{ "pem", ARG_BOOL, &pem, NULL, "print the PEM bundle (a CAfile) instead", 0, 0 },
		{ 0 },
	};
	struct httpc_resp resp = { 0 };
	const char **pos = NULL;
	struct table *t = NULL;
	char *path = NULL, *err = NULL;
	json_t *doc = NULL, *root;
	size_t i;
	int npos, rc;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE || (rc = no_args(cmd, npos, pos)) != CTL_CONTINUE)
		goto out;
	rc = CTL_ERR;
	if ((path = ctl_mesh_path(g, pem ? "/v1/connect/ca/roots?pem=true" : "/v1/connect/ca/roots"))
	    == NULL)
		goto out;
	if (pem) {
		if (ctl_http(g) == NULL)
			goto out;
		if (httpc_request(g->http, "GET", path, NULL, 0, NULL, 0, &resp, &err) != WEFT_OK) {
			rc = ctl_fail("%s", err);
			goto out;
		}
		if (resp.status != 200) {
			char *msg = httpc_error_message(&resp);
			rc = ctl_fail("%s (HTTP %ld)", msg ? msg : "error", resp.status);
			free(msg);
			goto out;
		}
		fwrite(resp.body ? resp.body : "", 1, resp.len, stdout);
		rc = CTL_OK;
		goto out;
	}
	if ((doc = ctl_call(g, "GET", path, NULL, NULL, &rc)) == NULL)
		goto out;
	if (g->json) {
		ctl_print_json(doc);
		goto out;
	}
	printf("Trust Domain:   %s\nActive Root ID: %s\n\n", ctl_str(doc, "TrustDomain"),
	       ctl_str(doc, "ActiveRootID"));
	t = table_new(4);
	{
		const char *hdr[] = { "ID", "Name", "Active", "NotAfter" };
		table_add(t, hdr);
	}
	json_array_foreach(json_object_get(doc, "Roots"), i, root) {
		const char *row[] = { ctl_str(root, "ID"), ctl_str(root, "Name"),
				      json_is_true(json_object_get(root, "Active")) ? "yes" : "no",
				      ctl_str(root, "NotAfter") };
		table_add(t, row);
	}
	table_print(t, stdout);
out:
	httpc_resp_free(&resp);
	table_free(t);
	json_decref(doc);
	free(err);
	free(path);
	free(pos);
	return rc;
}

/* ---- rotate ---- */

static int run_rotate(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *root_file = NULL, *key_file = NULL;
	int force = 0;
	const struct arg_opt opts[] = {
		{ "root-cert", ARG_STR, &root_file, "FILE",
		  "a provided CA: rotate to the root certificate in FILE (with -private-key)", 0, 0 },
		{ "private-key", ARG_STR, &key_file, "FILE", "the private key of -root-cert", 0, 0 },
		{ "force-without-cross-signing", ARG_BOOL, &force, NULL,
		  "do not cross-sign the new root with the old one (breaks old-root holders)", 0, 0 },
		{ 0 },
	};
	const char **pos = NULL;
	char *path = NULL, *roots_path = NULL, *cert = NULL, *key = NULL, *err = NULL;
	json_t *body = json_object(), *reply = NULL, *roots = NULL, *cfg = NULL;
	size_t len;
	int npos, rc;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE || (rc = no_args(cmd, npos, pos)) != CTL_CONTINUE)
		goto out;
	if (!root_file != !key_file) {
		rc = ctl_usage(cmd, "-root-cert and -private-key go together");
		goto out;
	}
	rc = CTL_ERR;
	if (root_file) {
		if (input_file(root_file, &cert, &len, &err) != WEFT_OK ||
		    input_file(key_file, &key, &len, &err) != WEFT_OK) {
			rc = ctl_fail("%s", err);
			goto out;
		}
		json_object_set_new(body, "Provider", json_string("provided"));
		json_object_set_new(body, "Config", json_pack("{s:s, s:s}", "RootCert", cert,
							      "PrivateKey", key));
	} else {
		json_object_set_new(body, "RotateRoot", json_true());
	}
	if (force)
		json_object_set_new(body, "ForceWithoutCrossSigning", json_true());
	if ((path = ctl_mesh_path(g, "/v1/connect/ca/configuration")) == NULL ||
	    (roots_path = ctl_mesh_path(g, "/v1/connect/ca/roots")) == NULL)
		goto out;
	if ((reply = ctl_call(g, "PUT", path, body, NULL, &rc)) == NULL)
		goto out;
	if ((roots = ctl_call(g, "GET", roots_path, NULL, NULL, &rc)) == NULL)
		goto out;
	if (g->json) {
		ctl_print_json(roots);
		goto out;
	}
	cfg = ctl_call(g, "GET", path, NULL, NULL, &rc);
	printf("Root rotated in mesh %s: the active root is now %s.\n",
	       g->mesh ? g->mesh : "default", ctl_str(roots, "ActiveRootID"));
	printf("The previous root stays in the trust bundle for the longest leaf TTL (%s);\n"
	       "leaves are re-issued by the new root meanwhile.\n",
	       cfg ? ctl_str(json_object_get(cfg, "Config"), "LeafCertTTL") : "LeafCertTTL");
	rc = CTL_OK;
out:
	if (key)
		ca_secret_free(key);
	free(cert);
	json_decref(body);
	json_decref(reply);
	json_decref(roots);
	json_decref(cfg);
	free(err);
	free(path);
	free(roots_path);
	free(pos);
	return rc;
}

/* ---- sign ---- */

static int write_file(const char *dir, const char *service, const char *suffix, const char *data,
		      unsigned mode, char *path, size_t size)
{
	if ((size_t)snprintf(path, size, "%s/%s%s", dir, service, suffix) >= size)
		return ctl_fail("%s/%s%s: path too long", dir, service, suffix);
	if (file_write_all(path, data, strlen(data), mode) != 0)
		return ctl_fail("cannot write %s: %s", path, strerror(errno));
	return CTL_OK;
}

static int run_sign(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *service = NULL, *dir = ".", *key_type = "ec";
	const struct arg_opt opts[] = {
		{ "service", ARG_STR, &service, "NAME", "the service the certificate is for", 0, 0 },
		{ "out-dir", ARG_STR, &dir, "DIR", "where to write the files (default .)", 0, 0 },
		{ "key-type", ARG_STR, &key_type, "ec|rsa",
		  "the new key: EC P-256 (default) or RSA 2048", 0, 0 },
		{ 0 },
	};
	const char **pos = NULL;
	char *path = NULL, *key = NULL, *csr = NULL, *err = NULL;
	char cert_path[PATH_MAX], chain_path[PATH_MAX], key_path[PATH_MAX];
	json_t *body = NULL, *leaf = NULL;
	struct stat st;
	int npos, rc;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE || (rc = no_args(cmd, npos, pos)) != CTL_CONTINUE)
		goto out;
	if (service == NULL || service[0] == '\0') {
		rc = ctl_usage(cmd, "-service is required");
		goto out;
	}
	if (!name_valid(service, CA_NAME_MAX + 1)) {
		rc = ctl_usage(cmd, "-service: \"%s\" is not a valid service name", service);
		goto out;
	}
	if (strcmp(key_type, "ec") && strcmp(key_type, "rsa")) {
		rc = ctl_usage(cmd, "-key-type: \"%s\" is not ec or rsa", key_type);
		goto out;
	}
	rc = CTL_ERR;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		rc = ctl_fail("-out-dir %s: not a directory", dir);
		goto out;
	}
	/* The key is made here and never leaves this machine. */
	if (ca_csr_create(strcmp(key_type, "rsa") == 0 ? "rsa-2048" : "ec-p256", service, NULL,
			  &key, &csr, &err) != WEFT_OK) {
		rc = ctl_fail("%s", err);
		goto out;
	}
	body = json_pack("{s:s, s:s}", "Service", service, "CSR", csr);
	if ((path = ctl_mesh_path(g, "/v1/connect/ca/sign")) == NULL)
		goto out;
	if ((leaf = ctl_call(g, "POST", path, body, NULL, &rc)) == NULL)
		goto out;
	rc = CTL_ERR;
	if (!json_is_string(json_object_get(leaf, "CertPEM"))) {
		rc = ctl_fail("the server's reply has no CertPEM");
		goto out;
	}
	if (write_file(dir, service, "-key.pem", key, 0600, key_path, sizeof(key_path)) != CTL_OK ||
	    write_file(dir, service, ".pem", ctl_str(leaf, "CertPEM"), 0644, cert_path,
		       sizeof(cert_path)) != CTL_OK ||
	    write_file(dir, service, "-chain.pem", ctl_str(leaf, "ChainPEM"), 0644, chain_path,
		       sizeof(chain_path)) != CTL_OK)
		goto out;
	if (g->json) {
		json_object_set_new(leaf, "CertFile", json_string(cert_path));
		json_object_set_new(leaf, "ChainFile", json_string(chain_path));
		json_object_set_new(leaf, "KeyFile", json_string(key_path));
		ctl_print_json(leaf);
	} else {
		printf("%-13s%s\n%-13s%s\n%-13s%s\n%-13s%s (mode 0600)\n%-13s%s\n",
		       "Service URI:", ctl_str(leaf, "ServiceURI"), "Certificate:", cert_path,
		       "Chain:", chain_path, "Key:", key_path, "Valid until:",
		       ctl_str(leaf, "ValidBefore"));
	}
	rc = CTL_OK;
out:
	if (key)
		ca_secret_free(key);
	free(csr);
	json_decref(body);
	json_decref(leaf);
	free(err);
	free(path);
	free(pos);
	return rc;
}

/* ---- config get|set ---- */

static int duration_field(json_t *cfg, const char *name, long long ms)
{
	char text[32];

	if (ms < 0)
		return 0;
	duration_format(ms, text, sizeof(text));
	return json_object_set_new(cfg, name, json_string(text));
}

static int run_config(struct ctl *g, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *provider = NULL, *root_file = NULL, *key_file = NULL;
	long long leaf = -1, rotation = -1, inter = -1;
	int force = 0;
	const struct arg_opt opts[] = {
		{ "provider", ARG_STR, &provider, "weft|provided", "set: the CA provider", 0, 0 },
		{ "leaf-ttl", ARG_DURATION, &leaf, "DURATION", "set: LeafCertTTL (e.g. 24h)", 0, 0 },
		{ "rotation-period", ARG_DURATION, &rotation, "DURATION", "set: RotationPeriod", 0, 0 },
		{ "intermediate-ttl", ARG_DURATION, &inter, "DURATION", "set: IntermediateCertTTL",
		  0, 0 },
		{ "root-cert", ARG_STR, &root_file, "FILE", "set: the provided root certificate", 0, 0 },
		{ "private-key", ARG_STR, &key_file, "FILE", "set: the provided root's key", 0, 0 },
		{ "force-without-cross-signing", ARG_BOOL, &force, NULL,
		  "set: do not cross-sign if this change rotates the root", 0, 0 },
		{ 0 },
	};
	const char **pos = NULL;
	char *path = NULL, *cert = NULL, *key = NULL, *err = NULL;
	json_t *body = NULL, *cfg = NULL, *reply = NULL, *c;
	size_t len;
	int npos, rc;

	rc = ctl_parse(g, cmd, opts, argc, argv, 0, &pos, &npos);
	if (rc != CTL_CONTINUE)
		goto out;
	if (npos != 1 || (strcmp(pos[0], "get") && strcmp(pos[0], "set"))) {
		rc = ctl_usage(cmd, "say get or set");
		goto out;
	}
	if (!root_file != !key_file) {
		rc = ctl_usage(cmd, "-root-cert and -private-key go together");
		goto out;
	}
	rc = CTL_ERR;
	if ((path = ctl_mesh_path(g, "/v1/connect/ca/configuration")) == NULL)
		goto out;
	if (strcmp(pos[0], "get") == 0) {
		if ((reply = ctl_call(g, "GET", path, NULL, NULL, &rc)) == NULL)
			goto out;
		if (g->json) {
			ctl_print_json(reply);
			goto out;
		}
		c = json_object_get(reply, "Config");
		printf("%-22s%s\n%-22s%s\n%-22s%s\n%-22s%s\n%-22s%s\n", "Provider:",
		       ctl_str(reply, "Provider"), "LeafCertTTL:", ctl_str(c, "LeafCertTTL"),
		       "RotationPeriod:", ctl_str(c, "RotationPeriod"), "IntermediateCertTTL:",
		       ctl_str(c, "IntermediateCertTTL"), "CrossSigning:",
		       json_is_true(json_object_get(reply, "ForceWithoutCrossSigning")) ? "off" : "on");
		goto out;
	}
	body = json_object();
	cfg = json_object();
	if (provider)
		json_object_set_new(body, "Provider", json_string(provider));
	if (force)
		json_object_set_new(body, "ForceWithoutCrossSigning", json_true());
	duration_field(cfg, "LeafCertTTL", leaf);
	duration_field(cfg, "RotationPeriod", rotation);
	duration_field(cfg, "IntermediateCertTTL", inter);
	if (root_file) {
		if (input_file(root_file, &cert, &len, &err) != WEFT_OK ||
		    input_file(key_file, &key, &len, &err) != WEFT_OK) {
			rc = ctl_fail("%s", err);
			goto out;
		}
		json_object_set_new(cfg, "RootCert", json_string(cert));
		json_object_set_new(cfg, "PrivateKey", json_string(key));
	}
	json_object_set(body, "Config", cfg);
	if ((reply = ctl_call(g, "PUT", path, body, NULL, &rc)) == NULL)
		goto out;
	if (g->json)
		ctl_print_json(reply);
	else
		printf("CA configuration written for mesh %s\n", g->mesh ? g->mesh : "default");
out:
	if (key)
		ca_secret_free(key);
	free(cert);
	json_decref(body);
	json_decref(cfg);
	json_decref(reply);
	free(err);
	free(path);
	free(pos);
	return rc;
}

const struct ctl_command ctl_cmds_ca[] = {
	{ "ca roots", "[-pem]", "list the mesh CA's roots (the trust bundle)",
	  "Lists the roots of the mesh (-mesh, default \"default\") from /v1/connect/ca/roots: "
	  "the active one and, during a rotation, the previous one. -pem prints them as a PEM "
	  "bundle to use as a CAfile.", run_roots },
	{ "ca rotate", "[-root-cert FILE -private-key FILE] [-force-without-cross-signing]",
	  "rotate the mesh CA's root",
	  "Makes a new root (or, with -root-cert and -private-key, switches to the operator's "
	  "own), cross-signed by the current one. Both roots stay in the trust bundle until "
	  "the longest leaf TTL has passed, so running traffic keeps working while leaves "
	  "are re-issued.", run_rotate },
	{ "ca sign", "-service NAME [-out-dir DIR] [-key-type ec|rsa]",
	  "get a leaf certificate for a service",
	  "Makes a key locally, sends a CSR to /v1/connect/ca/sign and writes DIR/NAME.pem "
	  "(certificate), DIR/NAME-chain.pem (what lies between it and a root) and "
	  "DIR/NAME-key.pem (the key, mode 0600). The token needs service:write on NAME.",
	  run_sign },
	{ "ca config", "get | set [-provider P] [-leaf-ttl D] [-rotation-period D] "
	  "[-intermediate-ttl D] [-root-cert FILE -private-key FILE]",
	  "show or change the mesh CA's configuration",
	  "get prints /v1/connect/ca/configuration; set changes what its flags name (a new "
	  "provided root rotates, as weftctl ca rotate does).", run_config },
	{ NULL, NULL, NULL, NULL, NULL },
};
