package adminapi

import (
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// opsStatus turns a failed operation into a gRPC status: the code from
// the operation's Kafka error, the message said once. An invalid argument
// names its field first ("partitions: ..."); the Kafka error's name is
// added only where the gRPC code alone would hide what happened (a
// retriable or internal failure: "REQUEST_TIMED_OUT: ...").
func opsStatus(e *ops.Error) error {
	c := grpcCode(e.Code)
	if e.Code == kerr.InvalidReplicationFactor && e.Field == "" {
		c = codes.Unavailable // no live log-service node: retry once one is up
	}
	msg := e.Msg
	if msg == "" {
		msg = e.Code.Description
	}
	switch c {
	case codes.InvalidArgument:
		if e.Field != "" {
			msg = e.Field + ": " + msg
		}
	case codes.Unavailable, codes.Internal, codes.DeadlineExceeded:
		msg = e.Code.Message + ": " + msg
	}
	return status.Error(c, msg)
}

// grpcCode maps a Kafka error to the gRPC code a caller acts on.
func grpcCode(ke *kerr.Error) codes.Code {
	switch ke {
	case kerr.UnknownTopicOrPartition, kerr.UnknownTopicID, kerr.GroupIDNotFound:
		return codes.NotFound
	case kerr.TopicAlreadyExists:
		return codes.AlreadyExists
	case kerr.InvalidTopicException, kerr.InvalidPartitions, kerr.InvalidReplicationFactor,
		kerr.InvalidConfig, kerr.InvalidRequest, kerr.PolicyViolation, kerr.InvalidGroupID,
		kerr.OffsetMetadataTooLarge, kerr.UnsupportedVersion, kerr.InvalidReplicaAssignment:
		return codes.InvalidArgument
	case kerr.NonEmptyGroup, kerr.UnknownMemberID, kerr.IllegalGeneration, kerr.RebalanceInProgress,
		kerr.GroupSubscribedToTopic:
		return codes.FailedPrecondition
	case kerr.RequestTimedOut:
		return codes.DeadlineExceeded
	}
	if ke.Retriable {
		return codes.Unavailable
	}
	return codes.Internal
}
