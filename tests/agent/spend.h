/* spend.h: CPU budgets for the agent test workloads. */
#ifndef HEARTH_TESTS_AGENT_SPEND_H
#define HEARTH_TESTS_AGENT_SPEND_H
void burn(long n);
double spend_cpu_now(void);
/* Burns `seconds` of this thread's CPU time in burn(). */
void spend(double seconds);
#endif
