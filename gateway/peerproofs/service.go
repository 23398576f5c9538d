package peerproofs

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codevector/codevector/gateway/peerproofs/peerproofspb"
)

// The gRPC service on the peer listener, generated from
// proto/codevector/gateway/v1/proofs.proto (`make proto`).

// service serves a Sharer's proofs.
type service struct {
	peerproofspb.UnimplementedProofsServer
	s *Sharer
}

// List sends every proof this replica holds, in batches; a new replica
// calls it on each peer before it reports ready.
func (v service) List(_ *peerproofspb.ListRequest, stream grpc.ServerStreamingServer[peerproofspb.ProofBatch]) error {
	for _, b := range v.s.listBatches() {
		if err := stream.Send(b); err != nil {
			return err
		}
	}
	return nil
}

// Push learns proofs a peer has just made.
func (v service) Push(_ context.Context, in *peerproofspb.ProofBatch) (*peerproofspb.PushResponse, error) {
	if _, err := v.s.learn(in); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &peerproofspb.PushResponse{}, nil
}

// list calls List on conn and passes each batch to learn.
func list(ctx context.Context, conn grpc.ClientConnInterface, learn func(*peerproofspb.ProofBatch) (int, error)) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := peerproofspb.NewProofsClient(conn).List(ctx, &peerproofspb.ListRequest{})
	if err != nil {
		return 0, err
	}
	total := 0
	for {
		batch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		n, err := learn(batch)
		total += n
		if err != nil {
			return total, err
		}
	}
}

// push calls Push on conn with one batch.
func push(ctx context.Context, conn grpc.ClientConnInterface, batch *peerproofspb.ProofBatch) error {
	_, err := peerproofspb.NewProofsClient(conn).Push(ctx, batch)
	return err
}
