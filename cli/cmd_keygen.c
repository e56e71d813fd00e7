/*
 * cmd_keygen.c - `bookingctl keygen`: a new Ed25519 signing key pair for an upstream
 * service. Writes PREFIX.sk (base64 secret key, mode 0600) and PREFIX.pub (base64 public
 * key), never overwriting either, and prints the keyring line for the processor.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "bk_auth.h"
#include "bk_ids.h"
#include "cmd.h"

#define DEFAULT_ROLES "buyer,provider"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bookingctl keygen --key-id ID [--roles ROLE,...] [--types PREFIX,...]\n"
		"                         [--out PREFIX]\n"
		"\n"
		"Generates an Ed25519 key pair, writes PREFIX.sk (base64 secret key, mode 0600)\n"
		"and PREFIX.pub (base64 public key), and prints the keyring line to stdout.\n"
		"Existing files are never overwritten.\n"
		"\n"
		"  --key-id ID        key id: 1..%d of [A-Za-z0-9_.:-] (required)\n"
		"  --roles LIST       roles the key may assert: buyer, provider, support, system\n"
		"                     (default " DEFAULT_ROLES ")\n"
		"  --types LIST       command-type prefixes the key may sign for role system,\n"
		"                     e.g. payment. (default: any type)\n"
		"  --out PREFIX       output path prefix (default: the key id)\n"
		"  -h, --help         this help\n"
		"\n"
		"exit: 0 ok, 1 key generation or file writing failed, 2 bad usage\n",
		BK_ID_MAX - 1);
}

/* Creates path (must not exist) with `mode` and writes text. Returns 0 or -1 (errno). */
static int write_new(const char *path, mode_t mode, const char *text)
{
	const size_t n = strlen(text);
	size_t done = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd < 0)
		return -1;
	while (done < n) {
		const ssize_t w = write(fd, text + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			const int e = w < 0 ? errno : EIO;
			close(fd);
			unlink(path);
			errno = e;
			return -1;
		}
		done += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		const int e = errno;
		unlink(path);
		errno = e;
		return -1;
	}
	return 0;
}

static char *path_with(const char *prefix, const char *suffix)
{
	const size_t n = strlen(prefix) + strlen(suffix) + 1;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s", prefix, suffix);
	return p;
}

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"key-id", required_argument, NULL, 'k'}, {"roles", required_argument, NULL, 'r'},
	    {"types", required_argument, NULL, 't'},  {"out", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},	      {NULL, 0, NULL, 0},
	};
	const char *key_id = NULL, *roles = DEFAULT_ROLES, *types = NULL, *out = NULL;
	uint8_t pk[BK_PK_LEN], sk[BK_SK_LEN];
	char pk64[64], sk64[128], line[512], err[256];
	char *sk_path = NULL, *pub_path = NULL;
	bk_keyring *kr = NULL;
	int c, rc = BK_EXIT_PROBLEM;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			key_id = optarg;
			break;
		case 'r':
			roles = optarg;
			break;
		case 't':
			types = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			usage(stdout);
			return BK_EXIT_OK;
		default:
			fprintf(stderr, "keygen: unknown option or missing argument: %s\n",
				argv[optind - 1]);
			usage(stderr);
			return BK_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "keygen: unexpected argument: %s\n", argv[optind]);
		usage(stderr);
		return BK_EXIT_USAGE;
	}
	if (key_id == NULL) {
		fprintf(stderr, "keygen: --key-id is required\n");
		usage(stderr);
		return BK_EXIT_USAGE;
	}
	if (!bk_id_valid(key_id, strlen(key_id), NULL)) {
		fprintf(stderr, "keygen: bad key id '%s': 1..%d of [A-Za-z0-9_.:-]\n", key_id,
			BK_ID_MAX - 1);
		return BK_EXIT_USAGE;
	}
	if (out == NULL)
		out = key_id;
	if (*out == '\0') {
		fprintf(stderr, "keygen: --out must not be empty\n");
		return BK_EXIT_USAGE;
	}

	if (bk_auth_keygen(pk, sk) != 0) {
		fprintf(stderr, "keygen: key generation failed (libsodium)\n");
		return BK_EXIT_PROBLEM;
	}
	/* One byte of each buffer is kept for the newline the key files end with. */
	if (bk_b64_encode(pk, sizeof pk, pk64, sizeof pk64 - 1) < 0 ||
	    bk_b64_encode(sk, sizeof sk, sk64, sizeof sk64 - 1) < 0) {
		fprintf(stderr, "keygen: base64 encoding failed\n");
		goto done;
	}
	if ((size_t)snprintf(line, sizeof line, "%s %s %s%s%s", key_id, pk64, roles,
			     types ? " " : "", types ? types : "") >= sizeof line) {
		fprintf(stderr, "keygen: --roles or --types too long\n");
		rc = BK_EXIT_USAGE;
		goto done;
	}
	/* The keyring parser is the judge of roles and prefixes, so the line always loads. */
	if (bk_keyring_parse(line, strlen(line), &kr, err, sizeof err) != 0) {
		const char *why = strncmp(err, "line 1: ", 8) == 0 ? err + 8 : err;
		fprintf(stderr, "keygen: %s\n", why);
		rc = BK_EXIT_USAGE;
		goto done;
	}

	sk_path = path_with(out, ".sk");
	pub_path = path_with(out, ".pub");
	if (sk_path == NULL || pub_path == NULL) {
		fprintf(stderr, "keygen: out of memory\n");
		goto done;
	}
	if (access(sk_path, F_OK) == 0 || access(pub_path, F_OK) == 0) {
		fprintf(stderr, "keygen: %s or %s exists; refusing to overwrite a key\n", sk_path,
			pub_path);
		rc = BK_EXIT_USAGE;
		goto done;
	}
	memcpy(sk64 + strlen(sk64), "\n", 2);
	memcpy(pk64 + strlen(pk64), "\n", 2);
	if (write_new(sk_path, 0600, sk64) != 0) {
		fprintf(stderr, "keygen: %s: %s\n", sk_path, strerror(errno));
		goto done;
	}
	if (write_new(pub_path, 0644, pk64) != 0) {
		fprintf(stderr, "keygen: %s: %s\n", pub_path, strerror(errno));
		unlink(sk_path);
		goto done;
	}
	printf("%s\n", line);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "keygen: writing stdout: %s\n", strerror(errno));
		goto done;
	}
	fprintf(stderr, "keygen: wrote %s (secret, mode 0600) and %s\n", sk_path, pub_path);
	rc = BK_EXIT_OK;
done:
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(sk64, sizeof sk64);
	bk_keyring_free(kr);
	free(sk_path);
	free(pub_path);
	return rc;
}
