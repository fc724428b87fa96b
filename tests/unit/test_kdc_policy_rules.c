/* kdc/policy.c: the ordered rule list (first match wins), patterns, per-pair lifetime,
 * forward-secret mode and suites, the default, the kd3 0.1 deny entries before the
 * rules, and every malformed rule refused with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "err.h"
#include "policy.h"

static char err[512];

static kd3_principal named(const char *name)
{
	kd3_principal p;
	memset(&p, 0, sizeof(p));
	p.name = name;
	p.name_len = (uint8_t)strlen(name);
	p.enabled = 1;
	return p;
}

static kd3_conf_list list_of(const char *const *items, size_t n)
{
	kd3_conf_list l;
	memset(&l, 0, sizeof(l));
	for (size_t i = 0; i < n; i++)
		snprintf(l.item[l.n++], KD3_CONF_STR_MAX, "%s", items[i]);
	return l;
}

static int build(kdc_policy *p, const char *const *deny, size_t ndeny, const char *const *rules,
                 size_t nrules, const char *def)
{
	kd3_conf_list d = list_of(deny, ndeny), r = list_of(rules, nrules);
	int ret = kdc_policy_init(p, &d, 3600, err, sizeof(err));
	return ret == KD3_OK ? kdc_policy_add_rules(p, &r, def, err, sizeof(err)) : ret;
}

/* The verdict for i -> r with a request of suite and flags. */
static kdc_verdict decide(const kdc_policy *p, const char *i, const char *r, uint8_t suite,
                          uint8_t flags)
{
	kd3_principal pi = named(i), pr = named(r);
	kdc_policy_request q = {suite, flags};
	kdc_verdict v;
	kdc_policy_decide(p, &pi, &pr, &q, &v);
	return v;
}

static void test_default_allows_everything(void **state)
{
	kdc_policy p;
	(void)state;
	assert_int_equal(build(&p, NULL, 0, NULL, 0, "allow"), KD3_OK);
	kdc_verdict v = decide(&p, "alice", "bob", KD3_SUITE_CHACHAPOLY, 0);
	assert_int_equal(v.err, KD3_OK);
	assert_int_equal(v.lifetime, 3600);
	assert_null(v.rule);
}

static void test_first_match_wins(void **state)
{
	static const char *const rules[] = {
	    "allow alice->bob lifetime=600",
	    "deny alice->*",
	    "allow web/*->db/* lifetime=60",
	    "deny *->db/primary",
	};
	kdc_policy p;
	(void)state;
	assert_int_equal(build(&p, NULL, 0, rules, 4, "deny"), KD3_OK);
	assert_int_equal(p.nrules, 4);

	kdc_verdict v = decide(&p, "alice", "bob", KD3_SUITE_CHACHAPOLY, 0);
	assert_int_equal(v.err, KD3_OK);
	assert_int_equal(v.lifetime, 600);
	assert_string_equal(v.rule->label, "rule[1]");

	v = decide(&p, "alice", "carol", KD3_SUITE_CHACHAPOLY, 0);
	assert_int_equal(v.err, KD3_E_POLICY_DENIED);
	assert_string_equal(v.rule->label, "rule[2]");
	assert_string_equal(v.why, "a rule denies the pair");

	v = decide(&p, "web/front", "db/primary", KD3_SUITE_CHACHAPOLY, 0);
	assert_int_equal(v.err, KD3_OK); /* rule 3 comes before rule 4 */
	assert_int_equal(v.lifetime, 60);

	v = decide(&p, "batch", "db/primary", KD3_SUITE_CHACHAPOLY, 0);
	assert_int_equal(v.err, KD3_E_POLICY_DENIED);
	assert_string_equal(v.rule->label, "rule[4]");

	v = decide(&p, "batch", "carol", KD3_SUITE_CHACHAPOLY, 0); /* no rule: the default */
	assert_int_equal(v.err, KD3_E_POLICY_DENIED);
	assert_null(v.rule);
	assert_non_null(strstr(v.why, "policy-default = deny"));
}

static void test_prefix_patterns(void **state)
{
	static const char *const rules[] = {"deny web*->*"};
	kdc_policy p;
	(void)state;
	assert_int_equal(build(&p, NULL, 0, rules, 1, "allow"), KD3_OK);
	assert_int_equal(decide(&p, "web", "x", 1, 0).err, KD3_E_POLICY_DENIED);
	assert_int_equal(decide(&p, "web/front", "x", 1, 0).err, KD3_E_POLICY_DENIED);
	assert_int_equal(decide(&p, "we", "x", 1, 0).err, KD3_OK);
	assert_int_equal(decide(&p, "xweb", "x", 1, 0).err, KD3_OK);
}

static void test_deny_entries_come_first(void **state)
{
	static const char *const deny[] = {"mallory->*"};
	static const char *const rules[] = {"allow *->*"};
	kdc_policy p;
	(void)state;
	assert_int_equal(build(&p, deny, 1, rules, 1, "deny"), KD3_OK);
	kdc_verdict v = decide(&p, "mallory", "bob", 1, 0);
	assert_int_equal(v.err, KD3_E_POLICY_DENIED);
	assert_string_equal(v.rule->label, "deny[1]");
	assert_int_equal(decide(&p, "alice", "bob", 1, 0).err, KD3_OK);
}

static void test_forward_secrecy_and_suites(void **state)
{
	static const char *const rules[] = {
	    "allow alice->bob fs=required", "allow *->bob suites=aes-256-gcm",
	    "allow *->carol fs=optional suites=chacha20-poly1305+aes-256-gcm"};
	kdc_policy p;
	uint32_t lifetime = 0;
	(void)state;
	assert_int_equal(build(&p, NULL, 0, rules, 3, "deny"), KD3_OK);
	kdc_verdict v = decide(&p, "alice", "bob", KD3_SUITE_CHACHAPOLY, 0);
	assert_int_equal(v.err, KD3_E_POLICY_DENIED);
	assert_non_null(strstr(v.why, "forward-secret"));
	assert_int_equal(decide(&p, "alice", "bob", KD3_SUITE_CHACHAPOLY, KD3_FLAG_FS).err, KD3_OK);
	v = decide(&p, "dave", "bob", KD3_SUITE_CHACHAPOLY, KD3_FLAG_FS);
	assert_int_equal(v.err, KD3_E_POLICY_DENIED);
	assert_non_null(strstr(v.why, "suite"));
	assert_int_equal(decide(&p, "dave", "bob", KD3_SUITE_AES256GCM, 0).err, KD3_OK);
	assert_int_equal(decide(&p, "dave", "carol", KD3_SUITE_CHACHAPOLY, 0).err, KD3_OK);
	/* By names alone (the kd3 0.1 hook): suite and flags are not looked at. */
	kd3_principal a = named("alice"), b = named("bob");
	assert_int_equal(kdc_policy_check(&p, &a, &b, &lifetime), KD3_OK);
	assert_int_equal(lifetime, 3600);
}

static void test_bad_rules(void **state)
{
	static const struct {
		const char *rule, *why;
	} bad[] = {
	    {"permit alice->bob", "starts with neither 'allow' nor 'deny'"},
	    {"allow", "no INITIATOR->RESPONDER pair"},
	    {"allow alice=>bob", "no INITIATOR->RESPONDER pair"},
	    {"allow a b->c", "the pair is not"},
	    {"allow alice->", "the pair is not"},
	    {"allow ->bob", "the pair is not"},
	    {"allow **->bob", "the pair is not"},
	    {"allow alice->bob lifetime=0", "lifetime: '0'"},
	    {"allow alice->bob lifetime=604801", "lifetime: '604801'"},
	    {"allow alice->bob lifetime=12x", "lifetime: '12x'"},
	    {"allow alice->bob fs=maybe", "unknown option 'fs=maybe'"},
	    {"allow alice->bob suites=des", "unknown suite 'des'"},
	    {"allow alice->bob suites=", "suites: no suite named"},
	    {"allow alice->bob colour=red", "unknown option 'colour=red'"},
	    {"deny alice->bob lifetime=5", "a deny rule takes no options"},
	};
	kdc_policy p;
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *rules[] = {bad[i].rule};
		err[0] = '\0';
		assert_int_equal(build(&p, NULL, 0, rules, 1, "allow"), KD3_E_CONFIG);
		if (!strstr(err, bad[i].why) || strncmp(err, "rule: '", 7) != 0)
			fail_msg("rule '%s': got '%s', want '%s'", bad[i].rule, err, bad[i].why);
	}
	assert_int_equal(build(&p, NULL, 0, NULL, 0, "perhaps"), KD3_E_CONFIG);
	assert_non_null(strstr(err, "policy-default: 'perhaps' is neither allow nor deny"));
	/* Blanks around the pair and between options are fine. */
	const char *ok[] = {"  allow   alice -> bob   lifetime=5\tfs=required "};
	assert_int_equal(build(&p, NULL, 0, ok, 1, "allow"), KD3_OK);
	assert_string_equal(p.rule[0].initiator, "alice");
	assert_string_equal(p.rule[0].responder, "bob");
	assert_int_equal(p.rule[0].lifetime, 5);
	assert_int_equal(p.rule[0].require_fs, 1);
}

/* kdc.conf as the KDC reads it: n "deny" and n "rule" lines (rule k allows p<k>->r
 * with lifetime k*10, deny k refuses d<k>->r). */
static int load_lines(size_t n, kd3_conf_list *deny, kd3_conf_list *rules)
{
	char path[] = "/tmp/kd3-policy-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f, "[kdc]\n");
	for (size_t k = 1; k <= n; k++)
		fprintf(f, "deny = d%zu->r\nrule = allow p%zu->r lifetime=%zu\n", k, k, k * 10);
	fclose(f);
	const kd3_option opts[] = {{"deny", KD3_OPT_LIST, deny, 0, 0, ""},
	                           {"rule", KD3_OPT_LIST, rules, 0, 0, ""}};
	memset(deny, 0, sizeof(*deny));
	memset(rules, 0, sizeof(*rules));
	int ret = kd3_conf_load(path, "kdc", opts, 2, err, sizeof(err));
	unlink(path);
	return ret;
}

/* docs/OPERATIONS.md section 4: at most 64 rule entries and 64 deny entries. All 64 of
 * each are enforced (the last of each decides its pair); a 65th is refused with the
 * line that holds it. */
static void test_rule_limit(void **state)
{
	static kd3_conf_list deny, rules;
	static kdc_policy p;
	(void)state;
	assert_int_equal(KD3_CONF_LIST_MAX, 64);
	assert_int_equal(load_lines(64, &deny, &rules), KD3_OK);
	assert_int_equal(kdc_policy_init(&p, &deny, 3600, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_policy_add_rules(&p, &rules, "deny", err, sizeof(err)), KD3_OK);
	assert_int_equal(p.nrules, 128);
	kdc_verdict v = decide(&p, "p64", "r", KD3_SUITE_CHACHAPOLY, 0);
	assert_int_equal(v.err, KD3_OK);
	assert_int_equal(v.lifetime, 640);
	assert_string_equal(v.rule->label, "rule[64]");
	v = decide(&p, "d64", "r", KD3_SUITE_CHACHAPOLY, 0);
	assert_int_equal(v.err, KD3_E_POLICY_DENIED);
	assert_string_equal(v.rule->label, "deny[64]");

	assert_int_equal(load_lines(65, &deny, &rules), KD3_E_CONFIG);
	assert_non_null(strstr(err, ":130: "));
	assert_non_null(strstr(err, "too many items (max 64)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_allows_everything),
	    cmocka_unit_test(test_first_match_wins),
	    cmocka_unit_test(test_prefix_patterns),
	    cmocka_unit_test(test_deny_entries_come_first),
	    cmocka_unit_test(test_forward_secrecy_and_suites),
	    cmocka_unit_test(test_bad_rules),
	    cmocka_unit_test(test_rule_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
