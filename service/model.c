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

void call_copy(struct call *dst, const struct call *src)
{
	*dst = *src;
	user_info_copy(&dst->party[PARTY_CALLER], &src->party[PARTY_CALLER]);
	user_info_copy(&dst->party[PARTY_RECEIVER], &src->party[PARTY_RECEIVER]);
	dst->err_msg = src->err_msg ? xstrdup(src->err_msg) : NULL;
}

void call_release(struct call *call)
{
	user_info_release(&call->party[PARTY_CALLER]);
	user_info_release(&call->party[PARTY_RECEIVER]);
	free(call->err_msg);
	call->err_msg = NULL;
}

void call_free(struct call *call)
{
	if (!call)
		return;
	call_release(call);
	free(call);
}
