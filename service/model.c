/*
 * model.c - names of the contract's enums and the User helpers of model.h.
 */
#include "model.h"

#include <stdlib.h>

#include "util.h"

void user_info_release(struct user_info *u)
{
	free(u->id);
	free(u->name);
	free(u->location);
	u->id = u->name = u->location = NULL;
}

void user_info_copy(struct user_info *dst, const struct user_info *src)
{
	dst->id = xstrdup(src->id);
	dst->name = xstrdup(src->name);
	dst->location = xstrdup(src->location);
}

const char *call_status_name(enum call_status s)
{
	static const char *const names[] = { "DIALLING", "ONGOING", "ENDED", "DECLINED", "MISSED", "ERROR" };
	return names[s];
}

const char *event_type_name(enum event_type t)
{
	static const char *const names[] = { "INCOMING_CALL", "ACCEPT_CALL", "DECLINE_CALL", "END_CALL" };
	return names[t];
}

const char *end_reason_name(enum end_reason r)
{
	static const char *const names[] = { NULL,      "HANGUP", "CANCELLED",     "DECLINED",
					     "TIMEOUT", "BUSY",   "PARTY_OFFLINE", "MEDIA_ENDED" };
	return names[r];
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

void actor_set(struct actor *a, const char *user_id, const char *device_id)
{
	actor_release(a);
	a->user_id = dup_or_null(user_id);
	a->device_id = dup_or_null(device_id);
}

void actor_release(struct actor *a)
{
	free(a->user_id);
	free(a->device_id);
	a->user_id = a->device_id = NULL;
}

void call_copy(struct call *dst, const struct call *src)
{
	*dst = *src;
	user_info_copy(&dst->party[PARTY_CALLER], &src->party[PARTY_CALLER]);
	user_info_copy(&dst->party[PARTY_RECEIVER], &src->party[PARTY_RECEIVER]);
	dst->err_msg = dup_or_null(src->err_msg);
	dst->answered_by =
	    (struct actor){ dup_or_null(src->answered_by.user_id), dup_or_null(src->answered_by.device_id) };
	dst->ended_by =
	    (struct actor){ dup_or_null(src->ended_by.user_id), dup_or_null(src->ended_by.device_id) };
}

void call_release(struct call *call)
{
	user_info_release(&call->party[PARTY_CALLER]);
	user_info_release(&call->party[PARTY_RECEIVER]);
	free(call->err_msg);
	call->err_msg = NULL;
	actor_release(&call->answered_by);
	actor_release(&call->ended_by);
}

void call_free(struct call *call)
{
	if (!call)
		return;
	call_release(call);
	free(call);
}
