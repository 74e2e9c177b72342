#!/usr/bin/env escript
%%! +sbwt none
%% Erlang/OTP peer figure for bench_workers: K independent ping-pong pairs, each pair
%% passing one message back and forth N times, all pairs at once. Prints
%% "pairs K MSGS_PER_S" (all pairs' messages per second, median of 3 runs of at least
%% SECONDS). The scheduler count comes from the caller: ERL_FLAGS="+S 1:1" or "+S 2:2".
-mode(compile).

main(Args) ->
    {K, Secs} = case Args of
                    [A, B | _] -> {list_to_integer(A), to_secs(B)};
                    [A] -> {list_to_integer(A), 1.0};
                    [] -> {8, 1.0}
                end,
    N = calibrate(K, 20000, Secs),
    Rates = lists:sort([K * N / timed(K, N) || _ <- [1, 2, 3]]),
    io:format("pairs ~w ~w schedulers ~w~n", [K, round(lists:nth(2, Rates)), erlang:system_info(schedulers_online)]).

to_secs(S) -> try list_to_float(S) catch _:_ -> float(list_to_integer(S)) end.

calibrate(K, N, Secs) ->
    T = timed(K, N),
    if T >= Secs -> N;
       true -> calibrate(K, round(N * min(10.0, max(1.2, Secs * 1.1 / max(T, 0.001)))), Secs)
    end.

timed(K, N) ->
    Self = self(),
    T0 = erlang:monotonic_time(nanosecond),
    [spawn(fun() -> pair(Self, N) end) || _ <- lists:seq(1, K)],
    [receive done -> ok end || _ <- lists:seq(1, K)],
    (erlang:monotonic_time(nanosecond) - T0) / 1.0e9.

%% N messages in all: the side that receives 0 reports done and tells the other to stop.
pair(Parent, N) ->
    B = spawn(fun() -> ball(Parent) end),
    B ! {self(), N},
    ball(Parent).

ball(Parent) ->
    receive
        stop -> ok;
        {From, 0} -> From ! stop, Parent ! done;
        {From, R} -> From ! {self(), R - 1}, ball(Parent)
    end.
