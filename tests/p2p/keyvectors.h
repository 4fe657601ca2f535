/* keyvectors.h — test vectors for keys and PeerIds.
 * SPEC_*: the libp2p peer-ids spec test vectors. JS_*: produced once with js-libp2p
 * (@libp2p/crypto generateKeyPair + sign("peermcp test vector"), @libp2p/peer-id toString /
 * toCID) so our verification and text forms are checked against another implementation. */
#ifndef PEERMCP_TESTS_P2P_KEYVECTORS_H
#define PEERMCP_TESTS_P2P_KEYVECTORS_H

#define JS_SIGNED_MSG "peermcp test vector"

static const char SPEC_ED25519_PRIV[] =
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be8fd4b4"
    "7bf3d3b34b871c3cacf6010f0e42d474fce27e";
static const char SPEC_ED25519_PUB[] = "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
static const char SPEC_ED25519_ID[] = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq";
static const char SPEC_SECP256K1_PUB[] = "08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99";
static const char SPEC_SECP256K1_PRIV[] = "0802122053DADF1D5A164D6B4ACDB15E24AA4C5B1D3461BDBD42ABEDB0A4404D56CED8FB";
static const char SPEC_ECDSA_PUB[] =
    "0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004de3d300fa36ae0e8f5d530899d83abab44ab"
    "f3161f162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646a597fb4dcec034e9f77c409e62";

static const char JS_ED25519_PUB[] =
    "080112206a9fdead133082f866685508c314c973dcc473a4e85ea17e5027daaa90045e99";
static const char JS_ED25519_SIG[] =
    "38cf5a750ed3c07a4fca1abd930f044758faa0a467a8019999777f302fc412d4ae72a7d48ff37a5104bd8caf7a090a38"
    "ad40241273f8c5be6eabc58bf0dbb601";
static const char JS_ED25519_ID[] =
    "12D3KooWGzamsY3XdHFrC79EvDaqqmcRnKgQuRrorBvuaNTKUvDN";
static const char JS_ED25519_CID[] =
    "bafzaajaiaejca2u732wrgmec7btgqviiymkms464yrz2j2c6uf7faj62vkiaixuz";
static const char JS_SECP256K1_PUB[] =
    "08021221029496784a2a7de66e778e1c48f81eb9df800742f9f604e30250e1c8cbf4d6026f";
static const char JS_SECP256K1_SIG[] =
    "304402204315e0970f5e6c49d6e656bc60f3fa1207e77d22da6788a9bfc24872f4c545c60220149f6a8d1b509c28c53e"
    "3df406a1226d9cae1d2e9ac6ee766c5053504824431a";
static const char JS_SECP256K1_ID[] =
    "16Uiu2HAm5RhPu3BTZypAmRzqn8BxhUC5pYr61oFwhMi7bqiZZueW";
static const char JS_SECP256K1_CID[] =
    "bafzaajiiaijccauusz4eukt54zxhpdq4jd4b5oo7qaduf6pwatrqeuhbzdf7jvqcn4";
static const char JS_RSA_PUB[] =
    "080012a60230820122300d06092a864886f70d01010105000382010f003082010a0282010100a09b8ebc485c6c75923b"
    "82cf0712a853debd879719d024f37a2d64cd84545e0898618b82b14b45d12b34326e01224bdc4c4a7ed073a14836a5a3"
    "3f6d8166b27b1dc3414ba8f8f8918949caf8491f7d3228738a9ed20c67f6c3baaf3e96336c67674d94eae47853ca5fa7"
    "103cb2670fdf44132692f038ff0570475867c38ee102977751ec143aca15b7842f9ffed4f8f609f443843600ca1a2a8e"
    "83e601dfee3199d423e944a76a4348ecd344837b60e768abb968ab449adb1aa3275dad56de9213c38db93e0a007c37c1"
    "fc4a931fbeeb4c8ce9558aaf664b8b12f50b385a15a348b9e8e5369aad7976725980f765a6aebc5b35051f43d4c0dad1"
    "7e098b6b9cfb0203010001";
static const char JS_RSA_SIG[] =
    "2c68b34374b94e5adb38b8fb754700ad911667e460258b204605eb2ff807e1b155e792613ac48fbf0abe22802c7aebe3"
    "546dc250908d151d7886ade07e624d5ecbb6fe8986796fd8ac56b2d6905851b46f838c7b59ffb674c122f5c3f2043d2a"
    "7d53a0b019113c9d58e140ed455a1978aa7b2cab038709c4449fd63da16a889d6833cbdc90c951653f01bb9ff4974219"
    "18a5ecab11ffc28115de1efbb0cee900b6c23e2e53a22b9c689e24d12cffcb50027e9dd48c0874515cb036689c1721de"
    "9bd662fff11eb14cae4e2f9c7f71be41945b62c5875cb421427a8decb1b148d35340cfd35517858fd34b8621cbbd1eb9"
    "a737e606a67b964903ef3d39ec0368b7";
static const char JS_RSA_ID[] =
    "Qmc4mqUGMyPhfYHUzcE4i92E1mJUZi4qdGJ85VbMZ12XWo";
static const char JS_RSA_CID[] =
    "bafzbeigl6jq6y5vqsddivxfdacmefhskkkgfwddpprhmuj66uuwq7jdzea";

#endif
