extends Node
## Minimal client for wsmp-relay.
##
## godot --headless --path examples/godot -- --url=ws://127.0.0.1:9080/ [--token=SECRET] [--say=TEXT] [--quit-after=SECONDS]
##
## Connects with WebSocketMultiplayerPeer.create_client(url); the relay is the
## server (peer 1). Every other client in the room is greeted with an RPC that
## travels through the relay: rpc_id(id, "hello", my_id).

const DEFAULT_URL := "ws://127.0.0.1:9080/"

var url: String = DEFAULT_URL
var token: String = ""
var quit_after: float = 0.0
var say: String = ""
var peer := WebSocketMultiplayerPeer.new()
var quitting := false


func _ready() -> void:
	_parse_user_args()
	var scene_multiplayer := multiplayer as SceneMultiplayer

	multiplayer.connected_to_server.connect(_on_connected_to_server)
	multiplayer.connection_failed.connect(_on_connection_failed)
	multiplayer.server_disconnected.connect(_on_server_disconnected)
	multiplayer.peer_connected.connect(_on_peer_connected)
	multiplayer.peer_disconnected.connect(_on_peer_disconnected)

	if scene_multiplayer != null:
		# send_bytes() data (RAW packets), e.g. from the relay's browser demo page.
		scene_multiplayer.peer_packet.connect(_on_peer_packet)

	if token != "":
		if scene_multiplayer == null:
			printerr("auth needs the default SceneMultiplayer")
			get_tree().quit(2)
			return
		# With an auth_callback the relay (peer 1) is "authenticating" until both
		# sides have completed; peer_authenticating(1) fires when our id arrives.
		scene_multiplayer.auth_callback = _on_auth_data
		scene_multiplayer.peer_authenticating.connect(_on_peer_authenticating)
		scene_multiplayer.peer_authentication_failed.connect(_on_peer_authentication_failed)

	var err := peer.create_client(url)
	if err != OK:
		print("connection failed: create_client(%s) returned %s" % [url, error_string(err)])
		get_tree().quit(1)
		return
	multiplayer.multiplayer_peer = peer
	print("connecting to %s" % url)

	if quit_after > 0.0:
		get_tree().create_timer(quit_after).timeout.connect(_on_quit_timer)


func _parse_user_args() -> void:
	# Arguments after "--" on the command line.
	for arg in OS.get_cmdline_user_args():
		if arg.begins_with("--url="):
			url = arg.trim_prefix("--url=")
		elif arg.begins_with("--token="):
			token = arg.trim_prefix("--token=")
		elif arg.begins_with("--say="):
			say = arg.trim_prefix("--say=")
		elif arg.begins_with("--quit-after="):
			quit_after = arg.trim_prefix("--quit-after=").to_float()
		else:
			printerr("ignoring unknown argument %s" % arg)


func _on_connected_to_server() -> void:
	print("connected as %d" % multiplayer.get_unique_id())
	var scene_multiplayer := multiplayer as SceneMultiplayer
	if say != "" and scene_multiplayer != null:
		# Target 0: the engine wraps it as RELAY 07 03 00 00 00 00 03 <text>.
		scene_multiplayer.send_bytes(say.to_utf8_buffer())


func _on_connection_failed() -> void:
	print("connection failed")
	get_tree().quit(1)


func _on_server_disconnected() -> void:
	if quitting:
		return
	print("server disconnected")
	get_tree().quit(0)


func _on_peer_connected(id: int) -> void:
	if id == 1:
		return # the relay itself
	print("peer joined %d" % id)
	# Relayed by the server: the client wraps it as 07 03 <id> <rpc>.
	hello.rpc_id(id, multiplayer.get_unique_id())


func _on_peer_disconnected(id: int) -> void:
	if id == 1:
		return
	print("peer left %d" % id)


func _on_peer_packet(id: int, packet: PackedByteArray) -> void:
	print("message from %d: %s" % [id, packet.get_string_from_utf8()])


func _on_peer_authenticating(id: int) -> void:
	# id is 1: send the token, then declare our side complete. The relay answers
	# with its own completion once the token matches, and then admits us.
	var scene_multiplayer := multiplayer as SceneMultiplayer
	var err := scene_multiplayer.send_auth(id, token.to_utf8_buffer())
	if err != OK:
		printerr("send_auth failed: %s" % error_string(err))
		return
	err = scene_multiplayer.complete_auth(id)
	if err != OK:
		printerr("complete_auth failed: %s" % error_string(err))


func _on_auth_data(id: int, data: PackedByteArray) -> void:
	# The relay sends no auth data of its own; anything here is unexpected.
	print("auth data from %d: %s" % [id, data.get_string_from_utf8()])


func _on_peer_authentication_failed(id: int) -> void:
	print("authentication failed with %d" % id)
	get_tree().quit(1)


func _on_quit_timer() -> void:
	quitting = true
	peer.close()
	get_tree().quit(0)


@rpc("any_peer", "call_remote", "reliable")
func hello(from_id: int) -> void:
	var sender := multiplayer.get_remote_sender_id()
	if sender != from_id:
		printerr("hello claims %d but came from %d" % [from_id, sender])
	print("hello from %d" % sender)
