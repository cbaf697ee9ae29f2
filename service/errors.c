/*
 * errors.c - the one table from enum err to HTTP status, machine code and
 * default message. Messages of the origin server ("Caller is offline",
 * "Receiver busy", "Call not found", ...) are kept word for word.
 */
#include "errors.h"

static const struct {
	int status;
	const char *code;
	const char *message;
} table[ERR__COUNT] = {
	[ERR_OK] = { 200, "OK", "OK" },
	[ERR_MISSING_FIELD] = { 400, "MISSING_FIELD", "A required field is missing" },
	[ERR_INVALID_FIELD] = { 400, "INVALID_FIELD", "A field has the wrong type" },
	[ERR_INVALID_ID] = { 400, "INVALID_ID", "Invalid id" },
	[ERR_SELF_CALL] = { 400, "SELF_CALL", "Cannot call yourself" },
	[ERR_CALLER_OFFLINE] = { 404, "CALLER_OFFLINE", "Caller is offline" },
	[ERR_RECEIVER_OFFLINE] = { 404, "RECEIVER_OFFLINE", "Receiver is offline" },
	[ERR_CALLER_BUSY] = { 400, "CALLER_BUSY", "Caller busy" },
	[ERR_RECEIVER_BUSY] = { 400, "RECEIVER_BUSY", "Receiver busy" },
	[ERR_CALL_NOT_FOUND] = { 400, "CALL_NOT_FOUND", "Call not found" },
	[ERR_INVALID_ANSWER] = { 400, "INVALID_ANSWER", "answer must be ACCEPT or DECLINE" },
	[ERR_CALL_NOT_RINGING] = { 409, "CALL_NOT_RINGING", "Call is not ringing" },
	[ERR_NOT_A_PARTY] = { 403, "NOT_A_PARTY", "User is not a party of this call" },
	[ERR_NOT_IN_CALL] = { 403, "NOT_IN_CALL", "Not a party of an ongoing call in this room" },
	[ERR_TOKEN_NOT_CONFIGURED] = { 500, "TOKEN_NOT_CONFIGURED", "LiveKit key/secret not configured" },
	[ERR_BROKER_UNAVAILABLE] = { 503, "BROKER_UNAVAILABLE", "MQTT broker unavailable" },
	[ERR_RATE_LIMITED] = { 429, "RATE_LIMITED", "Too many call starts, retry later" },
	[ERR_UNAUTHORIZED] = { 401, "UNAUTHORIZED", "A valid user token is required" },
	[ERR_FORBIDDEN] = { 403, "FORBIDDEN", "The user token does not allow acting as this user" },
	[ERR_BAD_JSON] = { 400, "BAD_JSON", "Body is not a valid JSON object" },
	[ERR_UNSUPPORTED_MEDIA_TYPE] = { 415, "UNSUPPORTED_MEDIA_TYPE",
					 "Content-Type must be application/json or "
					 "application/x-www-form-urlencoded" },
	[ERR_BODY_TOO_LARGE] = { 413, "BODY_TOO_LARGE", "Request body too large" },
	[ERR_URI_TOO_LONG] = { 414, "URI_TOO_LONG", "Request URI too long" },
	[ERR_HEADERS_TOO_LARGE] = { 431, "HEADERS_TOO_LARGE", "Request headers too large" },
	[ERR_TRANSFER_ENCODING] = { 501, "UNSUPPORTED_TRANSFER_ENCODING",
				    "Transfer-Encoding not supported: send chunked or Content-Length" },
	[ERR_NOT_FOUND] = { 404, "NOT_FOUND", "Not found" },
	[ERR_METHOD_NOT_ALLOWED] = { 405, "METHOD_NOT_ALLOWED", "Method not allowed" },
	[ERR_INTERNAL] = { 500, "INTERNAL", "Internal error" },
	[ERR_NOT_READY] = { 503, "NOT_READY",
			    "Restoring the calls in progress after a restart; retry shortly" },
	[ERR_NO_LIVE_CALL] = { 404, "NO_LIVE_CALL", "The user has no live call" },
	[ERR_STORE_UNAVAILABLE] = { 503, "STORE_UNAVAILABLE",
				    "The call store (Redis) is unavailable; retry shortly" },
};

int err_http_status(enum err e)
{
	return (unsigned)e < ERR__COUNT ? table[e].status : 500;
}

const char *err_code(enum err e)
{
	return (unsigned)e < ERR__COUNT ? table[e].code : "INTERNAL";
}

const char *err_message(enum err e)
{
	return (unsigned)e < ERR__COUNT ? table[e].message : "Internal error";
}
