package mls_test

import (
	"fmt"
	"log"

	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
)

// A two-member conversation: Alice creates a group, adds Bob from his
// published KeyPackage, and they exchange a message.
func Example() {
	suite, err := ciphersuite.Lookup(ciphersuite.ID(1)) // MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	if err != nil {
		log.Fatal(err)
	}
	newKey := func() []byte {
		_, priv, err := suite.GenerateSigner(nil)
		if err != nil {
			log.Fatal(err)
		}
		return priv
	}

	// Bob publishes a KeyPackage and keeps the private bundle.
	kp, bobBundle, err := mls.NewKeyPackage(suite, mls.NewBasicCredential([]byte("bob")), newKey(), nil)
	if err != nil {
		log.Fatal(err)
	}

	alice, err := mls.CreateGroup(suite, []byte("chat-42"), mls.NewBasicCredential([]byte("alice")), newKey(), nil)
	if err != nil {
		log.Fatal(err)
	}
	out, err := alice.Add(kp)
	if err != nil {
		log.Fatal(err)
	}
	// The delivery service accepted the commit: move to the new epoch.
	if _, err := alice.MergePendingCommit(); err != nil {
		log.Fatal(err)
	}

	bob, err := mls.JoinFromWelcome(out.Welcome, bobBundle, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	msg, err := alice.Encrypt([]byte("hello bob"), nil)
	if err != nil {
		log.Fatal(err)
	}
	res, err := bob.Process(msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s from %s in epoch %d\n", res.Plaintext, res.Credential.Identity, bob.Epoch())
	// Output: hello bob from alice in epoch 1
}
