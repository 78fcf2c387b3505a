// Package clients is the shipper's view of who gets which events, where,
// how and when: every client with its sites, its own destination (an S3
// bucket or a local directory), formats, compression, schedule, threshold and
// notification webhook, plus the backup destination that receives everything.
//
// It is built once from config.Config by Load, and again on SIGHUP:
//
//   - Multi-client mode (CLIENTS_FILE set): a YAML file, see
//     deploy/clients.example.yaml. Unknown keys are refused, each site belongs
//     to at most one client, and every problem is reported with its place in
//     the file (clients[acme].credentials.secret_key: ...), all at once.
//   - Single-client mode (no CLIENTS_FILE): one client named CLIENT_NAME that
//     owns every site, from the seed's variables (CLIENT_S3_BUCKET,
//     CLIENT_S3_ACCESS_KEY, CLIENT_S3_SECRET_KEY, S3_BACKUP_BUCKET,
//     EXPORT_SCHEDULE, EXPORT_FORMAT, ...).
//
// With no bucket configured a destination is a local directory under
// EXPORT_DIR (EXPORT_DIR/client, EXPORT_DIR/backup), so a laptop run produces
// real export files with no cloud at all.
//
// The backup destination is shared by all clients; each client's share of it
// lives under {backup prefix}/client={name}, so that object and manifest keys
// of different clients can never collide. Events of a site no client claims
// go to the backup only, as the pseudo-client "_unclaimed" (Unclaimed).
//
// Credentials may be written as enc:v1 values (package secrets) and are
// decrypted here; in production (ENVIRONMENT=production) a plaintext secret
// is refused, and an http:// endpoint or webhook too. Decrypted credentials
// are secrets.Secret, which never prints itself; Redacted is the view for
// GET /export/config and contains no secret.
package clients
