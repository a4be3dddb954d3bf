/*
 * Request signing for the robots that want it (DingTalk, Feishu): an
 * HMAC-SHA256 in base64. OpenSSL's one-shot HMAC() keeps this to one call.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "relay.h"

int hmac_sha256_b64(const char *key, size_t klen, const char *msg, size_t mlen,
		    char *out, size_t outsize)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, mac, &maclen))
		return -1;
	if (outsize < 4 * ((maclen + 2) / 3) + 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen);
	return 0;
}
