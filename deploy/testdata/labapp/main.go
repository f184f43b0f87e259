// Command labapp is the release the lab deploy tests and the bench ship: a tiny
// HTTP server on $PORT that serves its release id on / and /sleep?d=DURATION,
// and a health check on /up. Its behaviour is internal/labapp; a release takes
// no flags, so it is chosen at build time with -ldflags "-X main.<switch>=<value>":
//
//	(none)                       an ordinary app: healthy, fast, and it exits AT ONCE on
//	                             SIGTERM with requests in flight (no drain)
//	drain=10s                    on SIGTERM, finish in-flight requests for up to 10 s
//	health=fail                  /up always answers 500
//	health=fail-stable           /up answers 500 in the stable slot only (fails after `current` switched)
//	canaryErrors=yes             500 on every app request in the canary slot (healthy, fails real traffic)
//	canaryErrorsSpare=SHOP       ... except requests naming ?shop=SHOP (passes the whitelist, fails a % stage)
//	startDelay=5s                listen 5 s late (a slow deploy that holds the lease)
//	errorsOneIn=25               503 to every 25th app request (4 %, per-process counter)
//	slowRoot=300ms               every app request takes 300 ms longer
//	crashAfter=8s                exit 2 eight seconds after the first passed health check
//	crashLoop=yes                exit 1 at once at start (systemd restarts it until its start limit)
//	faultSlot=canary|stable      errorsOneIn, slowRoot, crashAfter and crashLoop in that slot only
//	buildID=ID                   printed on / (the lab tests give every release its own sha256)
//
// /env?key=LAB_NAME echoes a LAB_* variable of the release's env (belay env
// set). Run as "start release" it is the lab's release command (belay deploy
// --release-command "start release"): it prints its release and whether
// DATABASE_URL reached it, and exits with $LAB_RELEASE_EXIT (default 0).
// LAB_HEALTH=fail in the env fails /up (a bad config that must roll back).
//
// /data?shop=S keeps per-shop data (GET; PUT replaces; POST appends): in the
// table labapp_shop_data of $DATABASE_URL when it is set (created if missing;
// every server of a cell shares it), else in $LABAPP_DATA_DIR. Run under the
// name belay-move (a symlink in the release tarball) it is the move hook:
// belay-move export|import SHOP on the same store.
//
// Deliberate failures carry the header X-Deliberate-Failure; every answer
// carries X-Belay-Release, X-Belay-Slot and the X-Belay-Pool nginx sent.
// A bad switch value stops the process at start with an error naming it.
package main

import (
	"os"

	"github.com/belay-sh/belay/internal/labapp"
)

var (
	health            = ""
	buildID           = ""
	canaryErrors      = ""
	canaryErrorsSpare = ""
	startDelay        = ""
	drain             = ""
	errorsOneIn       = ""
	slowRoot          = ""
	crashAfter        = ""
	crashLoop         = ""
	faultSlot         = ""
)

func main() {
	os.Exit(labapp.Main(labapp.Switches{
		Health: health, CanaryErrors: canaryErrors, ErrorsSpare: canaryErrorsSpare, StartDelay: startDelay,
		Drain: drain, ErrorsOneIn: errorsOneIn, SlowRoot: slowRoot, CrashAfter: crashAfter,
		CrashLoop: crashLoop, FaultSlot: faultSlot,
	}, buildID))
}
