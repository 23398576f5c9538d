package peerproofs

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The gRPC service on the peer listener. Messages are protobuf's own
// BytesValue and Empty, carrying the batches of wire.go, so there is no
// generated code: the service is described by hand below.
const serviceName = "codevector.gateway.v1.VerifiedKeyProofs"

const (
	listMethod = "/" + serviceName + "/List"
	pushMethod = "/" + serviceName + "/Push"
)

// proofService is what the service calls; *Sharer implements it.
type proofService interface {
	listBatches() [][]byte
	learn(batch []byte) (int, error)
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*proofService)(nil),
	Methods: []grpc.MethodDesc{{
		// Push: a peer passes on proofs it has just made.
		MethodName: "Push",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if _, err := srv.(proofService).learn(in.Value); err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
			return &emptypb.Empty{}, nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		// List: every proof this replica holds, in batches; a new replica
		// calls it on each peer before it reports ready.
		StreamName:    "List",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			if err := stream.RecvMsg(new(emptypb.Empty)); err != nil {
				return err
			}
			for _, b := range srv.(proofService).listBatches() {
				if err := stream.SendMsg(wrapperspb.Bytes(b)); err != nil {
					return err
				}
			}
			return nil
		},
	}},
	Metadata: "gateway/peerproofs/service.go",
}

// list calls List on conn and passes each batch to learn.
func list(ctx context.Context, conn *grpc.ClientConn, learn func([]byte) (int, error)) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := conn.NewStream(ctx, &serviceDesc.Streams[0], listMethod)
	if err != nil {
		return 0, err
	}
	if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
		return 0, err
	}
	if err := stream.CloseSend(); err != nil {
		return 0, err
	}
	total := 0
	for {
		batch := new(wrapperspb.BytesValue)
		err := stream.RecvMsg(batch)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		n, err := learn(batch.Value)
		total += n
		if err != nil {
			return total, err
		}
	}
}

// push calls Push on conn with one batch.
func push(ctx context.Context, conn *grpc.ClientConn, batch []byte) error {
	return conn.Invoke(ctx, pushMethod, wrapperspb.Bytes(batch), new(emptypb.Empty))
}
