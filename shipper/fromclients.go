package shipper

import (
	"context"
	"fmt"

	"github.com/evothesis/collector/shipper/clients"
)

// StoreOptions are the store settings that are not per destination.
type StoreOptions struct {
	// CAPEM, when set, is the only trusted TLS root for S3 endpoints
	// (otherwise the system roots, or AWS_CA_BUNDLE).
	CAPEM []byte
	// PartSize is the multipart part size (EXPORT_PART_BYTES, 8 MiB).
	PartSize int64
}

// Destinations turns the client configuration into the shipper's
// destinations: per client its own destination ("export:<client>:client")
// and its share of the backup ("export:<client>:backup"); for sites no
// client claims, the backup only ("export:_unclaimed:backup").
func Destinations(ctx context.Context, cc *clients.Config, so StoreOptions) ([]Destination, error) {
	var out []Destination
	for _, c := range cc.All() {
		c := c
		base := Destination{
			Client: c.Name, Schedule: c.Schedule, ScheduleName: c.Schedule.String(), Threshold: c.Threshold,
			Webhook: c.WebhookURL.Reveal(), Claims: c.Claims,
		}
		if c.HasDestination {
			d, err := destinationFrom(ctx, base, KindClient, c.Destination, so)
			if err != nil {
				return nil, fmt.Errorf("client %s: %w", c.Name, err)
			}
			out = append(out, d)
		}
		d, err := destinationFrom(ctx, base, KindBackup, c.Backup, so)
		if err != nil {
			return nil, fmt.Errorf("client %s backup: %w", c.Name, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func destinationFrom(ctx context.Context, d Destination, kind string, cd clients.Destination, so StoreOptions) (Destination, error) {
	d.Kind, d.Prefix, d.Formats, d.Compression, d.Config = kind, cd.Prefix, cd.Formats, cd.Compression, cd.Redacted()
	switch cd.Kind {
	case clients.KindS3:
		st, err := NewS3Store(ctx, S3Config{
			Bucket: cd.Bucket, Region: cd.Region, Endpoint: cd.Endpoint, UsePathStyle: cd.ForcePathStyle,
			AccessKey: cd.Credentials.AccessKey.Reveal(), SecretKey: cd.Credentials.SecretKey.Reveal(),
			CAPEM: so.CAPEM, PartSize: so.PartSize,
		})
		if err != nil {
			return d, err
		}
		d.Store = st
	case clients.KindFile:
		st, err := NewFileStore(cd.Dir)
		if err != nil {
			return d, err
		}
		d.Store = st
	default:
		return d, fmt.Errorf("unknown destination kind %q", cd.Kind)
	}
	return d, nil
}
