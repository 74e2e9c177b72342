%% Erlang distribution peer figures for bench_remote: two nodes started with
%% `erl -sname` by the benchmark. Run on node A as
%%   erl -sname A -setcookie C -noshell -pa DIR -run axbench_dist main BNODE N ROUNDS
%% burst: N one-way messages from a process on A to a process on B (B counts them and
%% answers when it has all N); pingpong: ROUNDS ping/pong round trips between a process
%% on A and one on B. Prints "burst MSGS_PER_S" and "rtt_us MICROSECONDS", then halts.
-module(axbench_dist).
-export([main/1, sink/2, pong_loop/0]).

main([BNode, NStr, RStr]) ->
    B = list_to_atom(BNode),
    N = list_to_integer(NStr),
    R = list_to_integer(RStr),
    pong = net_adm:ping(B),
    {module, ?MODULE} = rpc:call(B, code, ensure_loaded, [?MODULE]),
    burst(B, 1000), %% warm the connection up
    Rate = lists:nth(2, lists:sort([burst(B, N) || _ <- [1, 2, 3]])),
    Rtt = lists:nth(2, lists:sort([pingpong(B, R) || _ <- [1, 2, 3]])),
    io:format("burst ~w~nrtt_us ~.2f~n", [round(Rate), Rtt]),
    halt(0).

burst(B, N) ->
    Sink = spawn(B, ?MODULE, sink, [self(), N]),
    T0 = erlang:monotonic_time(nanosecond),
    send_hits(Sink, N),
    receive {done, Sink} -> ok end,
    N / ((erlang:monotonic_time(nanosecond) - T0) / 1.0e9).

send_hits(_Sink, 0) -> ok;
send_hits(Sink, N) -> Sink ! hit, send_hits(Sink, N - 1).

sink(From, N) -> sink_loop(From, N).
sink_loop(From, 0) -> From ! {done, self()};
sink_loop(From, N) -> receive hit -> sink_loop(From, N - 1) end.

pingpong(B, R) ->
    P = spawn(B, ?MODULE, pong_loop, []),
    T0 = erlang:monotonic_time(nanosecond),
    ping_loop(P, R),
    T = (erlang:monotonic_time(nanosecond) - T0) / 1.0e3,
    P ! stop,
    T / R.

ping_loop(_P, 0) -> ok;
ping_loop(P, R) ->
    P ! {ping, self()},
    receive pong -> ping_loop(P, R - 1) end.

pong_loop() ->
    receive
        {ping, From} -> From ! pong, pong_loop();
        stop -> ok
    end.
