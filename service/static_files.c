/*
 * static_files.c - see static_files.h.
 */
#include "static_files.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#define MAX_FILE_SIZE (16 * 1024 * 1024)

static const struct {
	const char *ext;
	const char *type;
} types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".mjs", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".json", "application/json" },
	{ ".map", "application/json" },
	{ ".png", "image/png" },
	{ ".svg", "image/svg+xml" },
	{ ".ico", "image/x-icon" },
	{ ".txt", "text/plain; charset=utf-8" },
};

static const char *type_of(const char *path)
{
	const char *dot = strrchr(path, '.');
	if (dot)
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strcmp(dot, types[i].ext) == 0)
				return types[i].type;
	return "application/octet-stream";
}

int static_files_read(const char *root, const char *url_path, char **body, size_t *len,
		      const char **content_type)
{
	if (url_path[0] != '/' || strstr(url_path, "..") || strchr(url_path, '\\') || strlen(url_path) > 512)
		return -1;
	if (strcmp(url_path, "/") == 0)
		url_path = "/index.html";
	char joined[PATH_MAX];
	if ((size_t)snprintf(joined, sizeof(joined), "%s%s", root, url_path) >= sizeof(joined))
		return -1;
	char real[PATH_MAX];
	size_t rootlen = strlen(root);
	if (!realpath(joined, real) || strncmp(real, root, rootlen) != 0 || real[rootlen] != '/')
		return -1;

	FILE *f = fopen(real, "rb");
	if (!f)
		return -1;
	struct stat st;
	int rc = -1;
	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= MAX_FILE_SIZE) {
		char *buf = xmalloc((size_t)st.st_size + 1);
		if (fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size) {
			buf[st.st_size] = '\0';
			*body = buf;
			*len = (size_t)st.st_size;
			*content_type = type_of(real);
			rc = 0;
		} else {
			free(buf);
		}
	}
	fclose(f);
	return rc;
}
