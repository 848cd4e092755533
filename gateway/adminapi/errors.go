package adminapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// kafkaStatus turns an error of the loopback Kafka call into a gRPC status.
// field names the request field a validation error is about; detail is
// the broker's error message, if any.
func kafkaStatus(err error, field string, detail ...string) error {
	msg := err.Error()
	for _, d := range detail {
		if d != "" {
			msg = fmt.Sprintf("%s: %s", msg, d)
		}
	}
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return status.Error(codes.DeadlineExceeded, msg)
		case errors.Is(err, context.Canceled):
			return status.Error(codes.Canceled, msg)
		}
		return status.Error(codes.Unavailable, msg)
	}
	switch ke {
	case kerr.UnknownTopicOrPartition, kerr.UnknownTopicID, kerr.GroupIDNotFound:
		return status.Error(codes.NotFound, msg)
	case kerr.TopicAlreadyExists:
		return status.Error(codes.AlreadyExists, msg)
	case kerr.InvalidTopicException, kerr.InvalidPartitions, kerr.InvalidReplicationFactor,
		kerr.InvalidConfig, kerr.InvalidRequest, kerr.PolicyViolation, kerr.InvalidGroupID,
		kerr.OffsetMetadataTooLarge, kerr.UnsupportedVersion:
		if field != "" {
			msg = field + ": " + msg
		}
		return status.Error(codes.InvalidArgument, msg)
	case kerr.NonEmptyGroup, kerr.UnknownMemberID, kerr.IllegalGeneration, kerr.RebalanceInProgress,
		kerr.GroupSubscribedToTopic:
		return status.Error(codes.FailedPrecondition, msg)
	}
	if ke.Retriable {
		return status.Error(codes.Unavailable, msg)
	}
	return status.Error(codes.Internal, msg)
}
