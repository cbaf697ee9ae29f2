/*
 * form.h - PURE parsing of application/x-www-form-urlencoded bodies into
 * the same named fields as a JSON body (see struct req_field in json_io.h).
 */
#ifndef CALLSIGNAL_FORM_H
#define CALLSIGNAL_FORM_H

#include <stddef.h>

#include "errors.h"
#include "json_io.h"

/*
 * Fills each field's value and len (new string, caller frees; NULL when
 * absent; %00 gives a NUL inside). A field given twice keeps its first
 * value. Returns ERR_OK, or ERR_INVALID_FIELD with *bad_field set when a
 * value has a bad %-escape or invalid UTF-8.
 */
enum err form_parse_fields(const char *body, size_t len, struct req_field *fields, size_t n,
			   const char **bad_field);

#endif
