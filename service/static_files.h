/*
 * static_files.h - reads the web client's files from the web root for GET.
 * Paths are confined to the root: "..", backslashes and symlinks out of it
 * are refused.
 */
#ifndef CALLSIGNAL_STATIC_FILES_H
#define CALLSIGNAL_STATIC_FILES_H

#include <stddef.h>

/*
 * Reads the file for url_path ("/" means "/index.html") under root (an
 * absolute, resolved directory). Returns 0 with *body (new, caller frees),
 * *len and *content_type (static) set; -1 when there is no such file.
 */
int static_files_read(const char *root, const char *url_path, char **body, size_t *len,
		      const char **content_type);

#endif
