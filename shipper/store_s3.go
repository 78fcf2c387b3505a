package shipper

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Config says how to reach one bucket.
type S3Config struct {
	Bucket       string
	Region       string // default us-east-1
	Endpoint     string // S3-compatible endpoint; empty: AWS
	UsePathStyle bool
	// AccessKey/SecretKey: static credentials; both empty uses the default
	// AWS credential chain (environment, shared config, IAM role).
	AccessKey string
	SecretKey string
	// CAPEM, when set, is the only trusted root for TLS (tests, private
	// stores). Otherwise the system roots, or AWS_CA_BUNDLE, apply.
	CAPEM []byte
	// PartSize is the multipart part size and the largest object sent as
	// one PutObject (default 8 MiB, minimum 5 MiB).
	PartSize int64
	// PartConcurrency is how many parts of one object are in flight (default 1).
	PartConcurrency int
	// SDKMaxAttempts bounds the SDK's own retries of one request (default 3);
	// the shipper retries whole objects on top, with its own backoff.
	SDKMaxAttempts int
}

// S3Store writes objects to a bucket.
type S3Store struct {
	cfg      S3Config
	client   *s3.Client
	uploader *manager.Uploader
	// unconditional is set once the store answered 501 to If-None-Match:
	// from then on Put checks with HEAD first, then writes unconditionally
	// (keys are deterministic, so a rewrite holds the same unit).
	unconditional atomic.Bool
	// partBuffers keeps first-part buffers between uploads. A fresh, zeroed
	// PartSize buffer per object was a quarter of the shipper's CPU (page
	// faults and zeroing of 8 MiB for objects that are mostly far smaller);
	// a sync.Pool lets the GC drop them when the shipper is idle.
	partBuffers sync.Pool
}

// DefaultPartSize is the multipart part size when none is configured.
const DefaultPartSize = 8 << 20

// NewS3Store builds the client. It does not contact the store.
func NewS3Store(ctx context.Context, cfg S3Config) (*S3Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3 destination: bucket is required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < manager.MinUploadPartSize {
		cfg.PartSize = manager.MinUploadPartSize
	}
	if cfg.PartConcurrency <= 0 {
		cfg.PartConcurrency = 1
	}
	if cfg.SDKMaxAttempts <= 0 {
		cfg.SDKMaxAttempts = 3
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(cfg.Region),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.SDKMaxAttempts
				o.MaxBackoff = 2 * time.Second
			})
		}),
	}
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	if len(cfg.CAPEM) > 0 {
		if !x509.NewCertPool().AppendCertsFromPEM(cfg.CAPEM) {
			return nil, fmt.Errorf("s3 destination %s: CA bundle holds no certificate", cfg.Bucket)
		}
		// Takes precedence over AWS_CA_BUNDLE.
		opts = append(opts, awsconfig.WithCustomCABundle(bytes.NewReader(cfg.CAPEM)))
	}
	opts = append(opts, awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = 16
	})))
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 destination %s: load AWS config: %w", cfg.Bucket, err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.UsePathStyle
		// Reads of multipart objects cannot be checked against a composite
		// checksum; the SDK would log that on every such read.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	//lint:ignore SA1019 the brief asks for the upload manager; transfermanager is still v0.
	up := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = cfg.PartSize
		u.Concurrency = cfg.PartConcurrency
	})
	return &S3Store{cfg: cfg, client: client, uploader: up}, nil
}

func (s *S3Store) String() string {
	if s.cfg.Endpoint != "" {
		return "s3://" + s.cfg.Bucket + " (" + s.cfg.Endpoint + ")"
	}
	return "s3://" + s.cfg.Bucket
}

// Put implements Store. An object up to PartSize is buffered, hashed and
// sent as one PutObject carrying its SHA-256 both as the checksum the store
// verifies and as x-amz-meta-sha256. A larger one streams through the upload
// manager as a multipart upload with a CRC32C checksum per part (verified by
// the store); its SHA-256 is computed on the way. Both are conditional
// (If-None-Match: *), so an existing object is never replaced.
func (s *S3Store) Put(ctx context.Context, in PutInput) (PutResult, error) {
	bufp := s.getPartBuffer()
	first, err := readFirstPart(in.Body, (*bufp)[:0], s.cfg.PartSize)
	*bufp = first
	n := len(first)
	// The buffer is reused only after a successful upload: after an error
	// the HTTP transport may still be reading a request body.
	ok := false
	defer func() {
		if ok {
			s.putPartBuffer(bufp)
		}
	}()
	meta := make(map[string]string, len(in.Metadata)+1)
	for k, v := range in.Metadata {
		meta[k] = v
	}
	var ifNoneMatch *string
	if s.unconditional.Load() {
		if _, herr := s.Head(ctx, in.Key); herr == nil {
			return PutResult{}, fmt.Errorf("put s3://%s/%s: %w", s.cfg.Bucket, in.Key, ErrExists)
		} else if !errors.Is(herr, ErrNotFound) {
			return PutResult{}, herr
		}
	} else {
		ifNoneMatch = aws.String("*")
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		sum := sha256.Sum256(first)
		meta["sha256"] = hex.EncodeToString(sum[:])
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:            aws.String(s.cfg.Bucket),
			Key:               aws.String(in.Key),
			Body:              bytes.NewReader(first),
			ContentLength:     aws.Int64(int64(n)),
			ContentType:       nonEmpty(in.ContentType),
			ContentEncoding:   nonEmpty(in.ContentEncoding),
			Metadata:          meta,
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
			ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
			IfNoneMatch:       ifNoneMatch,
		})
		if err != nil {
			return PutResult{}, s.wrap("put", in.Key, err)
		}
		ok = true
		return PutResult{Bytes: int64(n), SHA256: hex.EncodeToString(sum[:])}, nil
	}
	if err != nil {
		return PutResult{}, fmt.Errorf("read object %s: %w", in.Key, err)
	}
	h := sha256.New()
	h.Write(first)
	rest := &hashingReader{r: in.Body, h: h}
	body := io.MultiReader(bytes.NewReader(first), rest)
	_, err = s.uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket:            aws.String(s.cfg.Bucket),
		Key:               aws.String(in.Key),
		Body:              body,
		ContentType:       nonEmpty(in.ContentType),
		ContentEncoding:   nonEmpty(in.ContentEncoding),
		Metadata:          meta,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		IfNoneMatch:       ifNoneMatch,
	})
	if err != nil {
		return PutResult{}, s.wrap("multipart upload", in.Key, err)
	}
	ok = true
	return PutResult{Bytes: int64(n) + rest.n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func (s *S3Store) getPartBuffer() *[]byte {
	if b, ok := s.partBuffers.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 256<<10)
	return &b
}

func (s *S3Store) putPartBuffer(b *[]byte) { s.partBuffers.Put(b) }

// readFirstPart reads r into buf until EOF or limit bytes, growing buf only
// as far as the object needs. At EOF it returns io.EOF or
// io.ErrUnexpectedEOF, as io.ReadFull does; nil means limit bytes were read
// and more may follow.
func readFirstPart(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	for {
		if int64(len(buf)) >= limit {
			return buf, nil
		}
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(max(2*cap(buf), 256<<10), int(limit)))
			copy(grown, buf)
			buf = grown
		}
		end := min(cap(buf), int(limit))
		n, err := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if len(buf) == 0 {
				return buf, io.EOF
			}
			return buf, io.ErrUnexpectedEOF
		}
		if err != nil {
			return buf, err
		}
	}
}

// Head implements Store.
func (s *S3Store) Head(ctx context.Context, key string) (ObjectInfo, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return ObjectInfo{}, s.wrap("head", key, err)
	}
	return ObjectInfo{Bytes: aws.ToInt64(out.ContentLength), Metadata: out.Metadata}, nil
}

// Get implements Store.
func (s *S3Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	return out.Body, nil
}

// wrap classifies an SDK error: ErrExists for 412, ErrNotFound for 404,
// *DeniedError for credentials and permissions; anything else is left as
// is and retried with backoff.
func (s *S3Store) wrap(op, key string, err error) error {
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	where := fmt.Sprintf("%s s3://%s/%s", op, s.cfg.Bucket, key)
	switch {
	case status == http.StatusNotImplemented && (op == "put" || op == "multipart upload"):
		// No conditional writes here; the next attempt checks with HEAD.
		s.unconditional.Store(true)
		return fmt.Errorf("%s: store does not support If-None-Match, retrying without: %w", where, err)
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed":
		return fmt.Errorf("%s: %w", where, ErrExists)
	case status == http.StatusNotFound && code != "NoSuchBucket", code == "NoSuchKey", code == "NotFound":
		return fmt.Errorf("%s: %w", where, ErrNotFound)
	case deniedCodes[code], status == http.StatusForbidden, status == http.StatusUnauthorized:
		reason := code
		if reason == "" {
			reason = http.StatusText(status)
		}
		return &DeniedError{Reason: reason, Err: fmt.Errorf("%s: %w", where, err)}
	}
	return fmt.Errorf("%s: %w", where, err)
}

var deniedCodes = map[string]bool{
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
	"ExpiredToken": true, "InvalidToken": true, "TokenRefreshRequired": true,
	"AllAccessDisabled": true, "AccountProblem": true, "NoSuchBucket": true,
	"InvalidBucketName": true, "PermanentRedirect": true, "AuthorizationHeaderMalformed": true,
}

// DeniedError means the destination refused our credentials or lacks the
// bucket: retrying will not help until someone changes the configuration,
// so the destination pauses.
type DeniedError struct {
	Reason string
	Err    error
}

func (e *DeniedError) Error() string { return e.Err.Error() }
func (e *DeniedError) Unwrap() error { return e.Err }

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(strings.TrimSpace(s))
}
