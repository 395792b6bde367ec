/*
 * banned.h: functions that are too easy to misuse become compile errors
 * (after git's banned.h). Included last by common.h; use snprintf, memcpy with
 * explicit lengths, strtol/strtoull with end checks, and strtok_r.
 */
#ifndef HEARTH_CORE_BANNED_H
#define HEARTH_CORE_BANNED_H

#define BANNED(func) sorry_##func##_is_banned_in_hearth
#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef gets
#define gets(x) BANNED(gets)

#endif
