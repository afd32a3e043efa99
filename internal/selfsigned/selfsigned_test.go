package selfsigned

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

func TestNew(t *testing.T) {
	c, err := New("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := c.TLS.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: c.Pool}); err != nil {
			t.Errorf("not valid for %s: %v", host, err)
		}
	}
	if _, err := c.TLS.Leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: c.Pool}); err == nil {
		t.Error("valid for a host it was not made for")
	}
	if _, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil {
		t.Errorf("PEM pair: %v", err)
	}
}
