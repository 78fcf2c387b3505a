package shipper

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	"github.com/evothesis/collector/shipper/s3test"
)

func testS3Store(t *testing.T, srv *s3test.Server, bucket, secret string) *S3Store {
	t.Helper()
	st, err := NewS3Store(context.Background(), S3Config{
		Bucket: bucket, Endpoint: srv.Endpoint, UsePathStyle: true, Region: srv.Region,
		AccessKey: srv.AccessKey, SecretKey: secret, CAPEM: srv.CAPEM, PartSize: 5 << 20, SDKMaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStoresWriteOnceAndReportWhatTheyStored(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	fileStore, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stores := map[string]Store{"s3": testS3Store(t, srv, "bkt", srv.SecretKey), "file": fileStore}
	sizes := map[string]int{"small": 1000, "empty": 0, "multipart": 11<<20 + 17}
	ctx := context.Background()
	for sname, st := range stores {
		for name, size := range sizes {
			t.Run(sname+"/"+name, func(t *testing.T) {
				data := make([]byte, size)
				_, _ = rand.Read(data)
				want := sha256.Sum256(data)
				key := "p/site_id=a/dt=2025-01-01/hour=00/" + name + ".bin"
				res, err := st.Put(ctx, PutInput{Key: key, Body: io.NopCloser(bytes.NewReader(data)),
					ContentType: "application/octet-stream", Metadata: map[string]string{"first-index": "1"}})
				if err != nil {
					t.Fatalf("put: %v", err)
				}
				if res.Bytes != int64(size) || res.SHA256 != hex.EncodeToString(want[:]) {
					t.Fatalf("put result %+v, want %d bytes sha %x", res, size, want)
				}
				_, err = st.Put(ctx, PutInput{Key: key, Body: bytes.NewReader([]byte("other"))})
				if !errors.Is(err, ErrExists) {
					t.Fatalf("second put: got %v, want ErrExists", err)
				}
				info, err := st.Head(ctx, key)
				if err != nil || info.Bytes != int64(size) {
					t.Fatalf("head: %+v %v", info, err)
				}
				if sname == "s3" && info.Metadata["first-index"] != "1" {
					t.Fatalf("metadata lost: %v", info.Metadata)
				}
				got, err := hashObject(ctx, st, key)
				if err != nil || got != res {
					t.Fatalf("read back %+v %v, want %+v", got, err, res)
				}
				if _, err := st.Head(ctx, key+".missing"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("head missing: %v", err)
				}
			})
		}
	}
}

func TestS3StoreWrongSecretIsDenied(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	st := testS3Store(t, srv, "bkt", "wrong-secret")
	_, err := st.Put(context.Background(), PutInput{Key: "k", Body: bytes.NewReader([]byte("x"))})
	var denied *DeniedError
	if !errors.As(err, &denied) {
		t.Fatalf("got %v, want DeniedError", err)
	}
	st = testS3Store(t, srv, "no-such-bucket", srv.SecretKey)
	_, err = st.Put(context.Background(), PutInput{Key: "k", Body: bytes.NewReader([]byte("x"))})
	if !errors.As(err, &denied) {
		t.Fatalf("missing bucket: got %v, want DeniedError", err)
	}
}
