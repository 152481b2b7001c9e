/* Error texts and names, from the one table in forkqueue.h. */
#include "forkqueue.h"

#define FQ__EXPORT __attribute__((visibility("default")))

FQ__EXPORT const char *fq_version(void)
{
    return FQ_VERSION_STRING;
}

FQ__EXPORT const char *fq_strerror(int err)
{
    switch (err) {
    case FQ_OK:
        return "success";
#define FQ__XX(name, value, text)                                              \
    case FQ_##name:                                                            \
        return text;
        FQ_ERRNO_MAP(FQ__XX)
#undef FQ__XX
    }
    return "unknown error";
}

FQ__EXPORT const char *fq_err_name(int err)
{
    switch (err) {
    case FQ_OK:
        return "FQ_OK";
#define FQ__XX(name, value, text)                                              \
    case FQ_##name:                                                            \
        return "FQ_" #name;
        FQ_ERRNO_MAP(FQ__XX)
#undef FQ__XX
    }
    return "FQ_UNKNOWN";
}
