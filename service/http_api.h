/*
 * http_api.h - the REST API: routes, request validation, replies.
 *
 * One handler per endpoint behind one route table. Each handler validates
 * the request completely (body format, types, ids, the user token in jwt
 * mode), then asks core, then renders the reply. Errors become HTTP through
 * the table in errors.c only.
 */
#ifndef CALLSIGNAL_HTTP_API_H
#define CALLSIGNAL_HTTP_API_H

#include "config.h"
#include "core.h"
#include "http_server.h"

#define HTTP_BODY_LIMIT (16 * 1024)
/* POST /livekit/webhook takes larger bodies: LiveKit's events carry the room and a participant. */
#define HTTP_WEBHOOK_PATH       "/livekit/webhook"
#define HTTP_WEBHOOK_BODY_LIMIT (64 * 1024)

struct http_api;

/* cfg and core are borrowed for the life of the API. Returns NULL (logged)
 * when the web root or the user-token key cannot be used. */
struct http_api *http_api_new(const struct config *cfg, struct core *core);
void http_api_free(struct http_api *api);

/* The http_handler to give http_server_start, with the api as its ctx. */
void http_api_handle(void *api, const struct http_request *req, struct http_response *res);

#endif
