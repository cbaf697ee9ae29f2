/*
 * errors.h - every refusal the service can give, as one enum.
 *
 * Pure modules return these values; errors.c is the one table that turns
 * them into an HTTP status, a machine code and the default human message.
 */
#ifndef CALLSIGNAL_ERRORS_H
#define CALLSIGNAL_ERRORS_H

enum err {
	ERR_OK = 0,
	ERR_MISSING_FIELD,
	ERR_INVALID_FIELD,
	ERR_INVALID_ID,
	ERR_SELF_CALL,
	ERR_CALLER_OFFLINE,
	ERR_RECEIVER_OFFLINE,
	ERR_CALLER_BUSY,
	ERR_RECEIVER_BUSY,
	ERR_CALL_NOT_FOUND,
	ERR_INVALID_ANSWER,
	ERR_CALL_NOT_RINGING,
	ERR_NOT_A_PARTY,
	ERR_NOT_IN_CALL,
	ERR_TOKEN_NOT_CONFIGURED,
	ERR_BROKER_UNAVAILABLE,
	ERR_RATE_LIMITED,
	ERR_UNAUTHORIZED,
	ERR_FORBIDDEN,
	ERR_BAD_JSON,
	ERR_UNSUPPORTED_MEDIA_TYPE,
	ERR_BODY_TOO_LARGE,
	ERR_URI_TOO_LONG,
	ERR_HEADERS_TOO_LARGE,
	ERR_TRANSFER_ENCODING,
	ERR_NOT_FOUND,
	ERR_METHOD_NOT_ALLOWED,
	ERR_INTERNAL,
	ERR_NOT_READY,
	ERR_NO_LIVE_CALL,
	ERR_STORE_UNAVAILABLE,
	ERR__COUNT
};

/* HTTP status of err (200 for ERR_OK). */
int err_http_status(enum err e);
/* Machine code, e.g. "CALL_NOT_FOUND"; a static string. */
const char *err_code(enum err e);
/* Default human message, e.g. "Call not found"; a static string. */
const char *err_message(enum err e);

#endif
